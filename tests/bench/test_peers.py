"""hfcls-bench --peers: each tool told the same work, and each tool's own output read back into the same figures."""

import json
import os
import subprocess
import sys

import pytest

from hfcls.bench.peers import compare
from hfcls.bench.peers.compare import (
    read_hfcls,
    read_timm,
    read_trainer,
    summary,
    time_to,
    timm_command,
    tools,
    trainer_command,
    work_of,
)
from hfcls.errors import HfclsError
from hfcls.recipe import load_recipe, recipe_from_dict

from conftest import REPO, tiny_recipe_dict

PEERS_RECIPE = REPO / "benchmarks" / "recipes" / "resnet18_digits_peers.yaml"


def test_every_tool_is_told_the_recipes_work(tmp_path, digits_dir):
    work = work_of(
        load_recipe(PEERS_RECIPE, [f"data.train.path={digits_dir}/train", f"data.val.path={digits_dir}/val"])
    )
    assert (work["size"], work["pad"], work["batch_size"], work["epochs"]) == (32, 4, 64, 6)
    assert (work["lr"], work["weight_decay"], work["warmup_epochs"], work["workers"]) == (0.003, 0.05, 1.0, 2)
    trainer = trainer_command(work, tmp_path)
    assert trainer[trainer.index("--lr") + 1] == "0.003" and json.loads(trainer[trainer.index("--model-config") + 1])[
        "depths"
    ] == [2, 2, 2, 2]
    timm = timm_command(work, tmp_path / "train.py", tmp_path)
    assert timm[timm.index("--model") + 1] == "resnet18"
    assert timm[timm.index("--input-size") + 1 : timm.index("--input-size") + 4] == ["3", "32", "32"]
    assert timm[timm.index("--warmup-epochs") + 1] == "1" and "--sched-on-updates" in timm


@pytest.mark.parametrize("bf16", [True, False])
def test_hfcls_runs_as_the_recipe_says_and_in_bf16_where_the_hardware_has_it(tmp_path, digits_dir, monkeypatch, bf16):
    monkeypatch.setattr(compare, "has_bf16", lambda: bf16)
    recipe = load_recipe(PEERS_RECIPE, [f"data.train.path={digits_dir}/train"])
    commands = {name: command(tmp_path) for name, command, _ in tools(recipe, ["trainer"], None, ["seed=1"])}
    assert list(commands) == ["hfcls, workers", "hfcls, in memory"] + ["hfcls, bf16 + NHWC"] * bf16 + ["HF Trainer"]
    for name in ("hfcls, workers", "hfcls, in memory"):
        assert "seed=1" in commands[name] and "train.mixed_precision=bf16" not in commands[name]
    if bf16:
        fast = commands["hfcls, bf16 + NHWC"]
        assert {"seed=1", "data.in_memory=true", "train.mixed_precision=bf16", "train.channels_last=true"} <= set(fast)
        # the overrides that make it fast come last, so the recipe's own fp32 cannot undo them
        assert fast.index("train.mixed_precision=bf16") > fast.index("seed=1")


def test_work_the_peers_cannot_be_told_is_refused(tiny_data):
    recipe = recipe_from_dict(tiny_recipe_dict(*tiny_data, schedule={"type": "cosine"}))
    with pytest.raises(HfclsError, match="Resize, RandomCrop"):  # RandomResizedCrop + flip: no peer flag says that
        work_of(recipe)
    with pytest.raises(HfclsError, match="schedule.type=constant"):
        work_of(recipe_from_dict(tiny_recipe_dict(*tiny_data)))


def test_timm_lines_read_back_into_the_figures():
    lines = [
        (3.0, "Train: 0 [   0/22 (  5%)]  Loss: 2.30 (2.30)  Time: 0.900s,   71.11/s  (0.900s,   71.11/s)  LR: 1e-05"),
        (9.0, "Train: 0 [  21/22 (100%)]  Loss: 1.10 (1.70)  Time: 0.100s,  640.00/s  (0.150s,  426.67/s)  LR: 3e-3"),
        (9.5, "Test: [   0/5]  Time: 0.1 (0.1)  Loss:  1.0 ( 1.0)  Acc@1:  50.000 ( 50.000)  Acc@5: 90.0 (90.0)"),
        (10.0, "Test: [   5/5]  Time: 0.1 (0.1)  Loss:  1.0 ( 1.0)  Acc@1:  80.000 ( 61.250)  Acc@5: 99.0 (98.0)"),
        (16.0, "Train: 1 [  21/22 (100%)]  Loss: 0.5 (0.6)  Time: 0.100s,  640.00/s  (0.110s,  581.82/s)  LR: 1e-3"),
        (17.0, "Test: [   5/5]  Time: 0.1 (0.1)  Loss:  0.3 ( 0.3)  Acc@1:  95.000 ( 92.500)  Acc@5: 99.0 (99.5)"),
    ]
    figures = summary(18.0, read_timm(lines))
    assert figures["first_step"] == 3.0 and figures["top1"] == 92.5
    assert figures["images_per_sec"] == 581.82  # its own average rate, epochs after the first
    assert figures["eval_time"] == pytest.approx(1.0)  # median of 1.0 and 1.0
    assert time_to(figures["evaluations"], 90) == 17.0 and time_to(figures["evaluations"], 99) is None


def test_hfcls_lines_read_back_into_the_figures():
    lines = [
        (2.5, "12:00:01 INFO hfcls.engine.loop: first optimizer step 2.40 s after this process started"),
        (
            6.0,
            "12:00:05 INFO hfcls.engine.loop: epoch 1: step=22, lr=0.003, loss=1.2, images_per_sec=700.5, "
            "epoch_time=2.0, val_loss=0.5, val_accuracy_top1=90.5, val_accuracy_top5=99, eval_time=0.25",
        ),
    ]
    figures = summary(7.0, read_hfcls(lines))
    assert (figures["first_step"], figures["images_per_sec"], figures["eval_time"], figures["top1"]) == (
        2.5,
        700.5,
        0.25,
        90.5,
    )


def test_the_trainer_peer_trains_and_reports(tmp_path, tiny_data):
    """The Trainer peer itself, a few steps: its events are what the comparison reads."""
    train_dir, val_dir = tiny_data
    model = {
        "model_type": "resnet",
        "embedding_size": 8,
        "hidden_sizes": [8, 16],
        "depths": [1, 1],
        "layer_type": "basic",
    }
    work = {
        "train_dir": str(train_dir),
        "val_dir": str(val_dir),
        "model": model,
        "epochs": 2,
        "batch_size": 8,
        "lr": 0.01,
        "weight_decay": 0.0,
        "warmup_epochs": 1,
        "workers": 0,
        "size": 16,
        "pad": 2,
        "mean": [0.5] * 3,
        "std": [0.25] * 3,
        "seed": 0,
    }
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(trainer_command(work, tmp_path / "out"), capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [(float(i), line) for i, line in enumerate(done.stdout.splitlines())]
    record = read_trainer(lines)
    assert record["first_step"] is not None and [e["epoch"] for e in record["epochs"]] == [1, 2]
    for epoch in record["epochs"]:
        assert 0 <= epoch["top1"] <= 100 and epoch["images_per_sec"] > 0 and epoch["eval_time"] > 0
    assert (tmp_path / "out").is_dir()
    assert sys.executable in trainer_command(work, tmp_path)  # the peer runs in this environment, as hfcls does
