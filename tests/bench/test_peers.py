"""hfcls-bench --peers: each tool told the same work, and each tool's own output read back into the same figures."""

import json
import os
import subprocess
import sys
import time

import pytest

from hfcls.bench.peers import compare
from hfcls.bench.peers.compare import (
    read_hfcls,
    read_timm,
    read_trainer,
    run_timed,
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
def test_every_tool_runs_as_it_comes_and_with_its_own_best_switches(tmp_path, digits_dir, monkeypatch, bf16):
    monkeypatch.setattr(compare, "has_bf16", lambda: bf16)
    recipe = load_recipe(PEERS_RECIPE, [f"data.train.path={digits_dir}/train"])
    (tmp_path / "train.py").write_text("")
    compared = tools(recipe, ["trainer", "timm"], tmp_path / "train.py", ["seed=1"])
    commands = {tool.name: tool.command(tmp_path) for tool in compared}
    assert (
        list(commands)
        == ["hfcls, workers", "hfcls, in memory"]
        + ["hfcls, bf16 + NHWC"] * bf16
        + ["HF Trainer"]
        + ["HF Trainer, bf16"] * bf16
        + ["timm train.py"]
        + ["timm, bf16 + NHWC"] * bf16
    )
    assert [tool.name for tool in compared if tool.fp32] == [
        "hfcls, workers",
        "hfcls, in memory",
        "HF Trainer",
        "timm train.py",
    ]
    for name in ("hfcls, workers", "hfcls, in memory"):
        assert "seed=1" in commands[name] and "train.mixed_precision=no" in commands[name]
    assert "--bf16" not in commands["HF Trainer"] and "--amp" not in commands["timm train.py"]
    if bf16:
        fast = commands["hfcls, bf16 + NHWC"]
        assert {"seed=1", "data.in_memory=true", "train.mixed_precision=bf16", "train.channels_last=true"} <= set(fast)
        # the overrides that make it fast come last, so the recipe's own fp32 cannot undo them
        assert fast.index("train.mixed_precision=bf16") > fast.index("seed=1")
        assert commands["HF Trainer, bf16"][-1] == "--bf16"
        assert commands["timm, bf16 + NHWC"][-4:] == ["--amp", "--amp-dtype", "bfloat16", "--channels-last"]


def test_real_sizes_are_told_to_every_tool_and_hfcls_also_runs_its_recipe_as_written(tmp_path, monkeypatch):
    monkeypatch.setattr(compare, "has_bf16", lambda: True)
    monkeypatch.chdir(tmp_path)  # the recipe's data/bench/jpeg, as class folders only: timm is told their count
    for name in ("cat", "dog", "fox"):
        (tmp_path / "data" / "bench" / "jpeg" / "train" / name).mkdir(parents=True)
    recipe = load_recipe(REPO / "benchmarks" / "recipes" / "resnet18_jpeg_peers.yaml")
    work = work_of(recipe)
    assert (work["size"], work["eval_resize"], work["random_resized_crop"], work["optim"]) == (224, 256, True, "sgd")
    timm = timm_command(work, tmp_path / "train.py", tmp_path)
    assert timm[timm.index("--num-classes") + 1] == "3"
    assert timm[timm.index("--crop-pct") + 1] == "0.875" and "--scale" not in timm  # timm's RandomResizedCrop
    assert timm[timm.index("--opt") + 1 : timm.index("--opt") + 4] == ["sgd", "--momentum", "0.9"]
    assert timm[timm.index("--smoothing") + 1] == "0" and timm[timm.index("--color-jitter") + 1] == "0"
    trainer = trainer_command(work, tmp_path)
    assert "--random-resized-crop" in trainer and trainer[trainer.index("--eval-resize") + 1] == "256"
    (tmp_path / "train.py").write_text("")
    commands = {tool.name: tool.command(tmp_path) for tool in tools(recipe, ["timm"], tmp_path / "train.py")}
    assert list(commands) == [
        "hfcls, workers",
        "hfcls, bf16 + NHWC",
        "hfcls, recipe",
        "timm train.py",
        "timm, bf16 + NHWC",
    ]  # no in-memory row: RandomResizedCrop runs in the workers
    for name in ("hfcls, workers", "hfcls, bf16 + NHWC"):  # the peers' work: every epoch at 224
        assert {"data.progressive_resizing=null", "data.eval_size=null", "data.in_memory=false"} <= set(commands[name])
    assert not any("progressive_resizing" in part or "mixed_precision" in part for part in commands["hfcls, recipe"])


def test_work_the_peers_cannot_be_told_is_refused(tiny_data):
    recipe = recipe_from_dict(tiny_recipe_dict(*tiny_data, schedule={"type": "cosine"}))
    with pytest.raises(HfclsError, match="Resize, RandomCrop"):  # a RandomResizedCrop with its own scale
        work_of(recipe)
    with pytest.raises(HfclsError, match="schedule.type=constant"):
        work_of(recipe_from_dict(tiny_recipe_dict(*tiny_data)))


def test_the_cpu_time_of_a_command_is_split_between_it_and_its_children():
    # The parent spins ~0.3 s itself, then starts a child that spins ~0.6 s, and waits for it.
    code = (
        "import subprocess, sys, time\n"
        "def spin(s):\n    end = time.process_time() + s\n    while time.process_time() < end: pass\n"
        "spin(0.3)\n"
        "subprocess.run([sys.executable, '-c', 'import time\\nend = time.process_time() + 0.6\\n"
        "while time.process_time() < end: pass'])\n"
        "print('done')"
    )
    wall, lines, cpu = run_timed([sys.executable, "-c", code], dict(os.environ))
    assert lines[-1][1] == "done" and wall >= 0.9
    assert 0.3 <= cpu["main"] < 0.55 and 0.6 <= cpu["workers"] < 0.85


def test_a_command_that_hangs_is_stopped_at_the_timeout():
    started = time.monotonic()
    with pytest.raises(HfclsError, match="ran past 1 s and was stopped"):
        run_timed(
            [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"], dict(os.environ), timeout=1
        )
    assert time.monotonic() - started < 30


def test_timm_lines_read_back_into_the_figures():
    lines = [
        (3.0, "Train: 0 [   0/22 (  5%)]  Loss: 2.30 (2.30)  Time: 0.900s,   71.11/s  (0.900s,   71.11/s)  LR: 1e-05"),
        (9.0, "Train: 0 [  21/22 (100%)]  Loss: 1.10 (1.70)  Time: 0.100s,  640.00/s  (0.150s,  426.67/s)  LR: 3e-3"),
        (9.5, "Test: [   0/5]  Time: 0.1 (0.1)  Loss:  1.0 ( 1.0)  Acc@1:  50.000 ( 50.000)  Acc@5: 90.0 (90.0)"),
        (10.0, "Test: [   5/5]  Time: 0.1 (0.1)  Loss:  1.0 ( 1.0)  Acc@1:  80.000 ( 61.250)  Acc@5: 99.0 (98.0)"),
        (16.0, "Train: 1 [  21/22 (100%)]  Loss: 0.5 (0.6)  Time: 0.100s,  640.00/s  (0.110s,  581.82/s)  LR: 1e-3"),
        (17.0, "Test: [   5/5]  Time: 0.1 (0.1)  Loss:  0.3 ( 0.3)  Acc@1:  95.000 ( 92.500)  Acc@5: 99.0 (99.5)"),
    ]
    figures = summary(18.0, read_timm(lines), {"main": 30.0, "workers": 10.0}, images=400)
    assert figures["first_step"] == 3.0 and figures["top1"] == 92.5
    assert figures["images_per_sec"] == 581.82  # its own average rate, epochs after the first
    assert figures["decode_share"] == 0.25 and figures["worker_ms_per_image"] == 25.0
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
    figures = summary(7.0, read_hfcls(lines), {"main": 30.0, "workers": 10.0}, images=400)
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
        "optim": "adamw",
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "warmup_epochs": 1,
        "workers": 0,
        "size": 16,
        "pad": 2,
        "random_resized_crop": False,
        "eval_resize": 16,
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
