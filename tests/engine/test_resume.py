"""Exact resume: at an epoch's end and mid-epoch, after SIGTERM, and after a save killed half-way."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from PIL import Image

from hfcls.api import train
from hfcls.artifacts.checkpoint import read_state
from hfcls.artifacts.run_dir import find_latest_checkpoint
from hfcls.logs import read_jsonl
from hfcls.recipe import load_recipe

from conftest import REPO, deterministic_rows, max_difference, tiny_recipe_dict, weights, write_recipe


def run(tmp_path, tiny_data, name, *, resume_from=None, overrides=(), **sections):
    sections.setdefault("train", {})
    sections["train"] = {"deterministic": True, **sections["train"]}
    path = write_recipe(tmp_path / f"{name}.yaml", tiny_recipe_dict(*tiny_data, **sections))
    recipe = load_recipe(path, overrides)
    train(recipe, tmp_path / name, resume_from=resume_from)
    return tmp_path / name


def test_resume_at_epoch_end_is_exact(tmp_path, tiny_data):
    straight = run(tmp_path, tiny_data, "straight", train={"epochs": 4})
    split = run(tmp_path, tiny_data, "split", train={"epochs": 2})
    run(tmp_path, tiny_data, "split", train={"epochs": 4}, resume_from="auto")
    assert max_difference(weights(straight, "epoch_4"), weights(split, "epoch_4")) == 0
    rows = deterministic_rows(split)
    assert [row["epoch"] for row in rows] == [1, 2, 3, 4]
    assert rows == deterministic_rows(straight)
    assert "train.epochs changed from 2 to 4" in (split / "log.txt").read_text()


def test_changed_epochs_recompute_the_schedule(tmp_path, tiny_data):
    linear = {"schedule": {"type": "linear"}}
    work = run(tmp_path, tiny_data, "w", train={"epochs": 2}, **linear)
    run(tmp_path, tiny_data, "w", train={"epochs": 4}, resume_from="auto", **linear)
    # 3 steps per epoch; after step 9 of 12 the LR is 0.01 x (1 - 9/12). The old
    # 6-step schedule would have stayed at 0.
    assert [row["lr"] for row in read_jsonl(work / "metrics.jsonl")] == pytest.approx([0.005, 0.0, 0.0025, 0.0])


def test_resume_mid_epoch_is_exact(tmp_path, tiny_data):
    # A cosine schedule, so a scheduler not restored would show. 3 steps per
    # epoch: step_4 is after batch 1 of epoch 2.
    sections = {"train": {"epochs": 3}, "schedule": {"type": "cosine"}}
    straight = run(tmp_path, tiny_data, "straight", checkpoint={"interval_steps": 2}, **sections)
    assert sorted(p.name for p in (straight / "checkpoints").iterdir()) == [
        "epoch_1",
        "epoch_2",
        "epoch_3",
        "step_2",
        "step_4",
        "step_8",
    ]
    state = read_state(straight / "checkpoints" / "step_4")
    assert (state.epoch, state.step, state.batch_in_epoch) == (1, 4, 1)

    # A run stopped right after step 4: its work dir as it was then.
    stopped = tmp_path / "stopped"
    shutil.copytree(straight / "checkpoints" / "step_4", stopped / "checkpoints" / "step_4")
    (stopped / "metrics.jsonl").write_text((straight / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    run(tmp_path, tiny_data, "stopped", resume_from="auto", **sections)

    reference = run(tmp_path, tiny_data, "no_step_checkpoints", **sections)  # saving changes nothing
    assert max_difference(weights(reference, "epoch_3"), weights(stopped, "epoch_3")) == 0
    assert max_difference(weights(reference, "epoch_3"), weights(straight, "epoch_3")) == 0
    assert deterministic_rows(stopped) == deterministic_rows(reference) == deterministic_rows(straight)


@pytest.mark.slow
def test_resume_mid_epoch_with_persistent_workers_is_exact(tmp_path, tiny_data):
    sections = {"train": {"epochs": 2}, "data": {"num_workers": 2, "persistent_workers": True}}
    straight = run(tmp_path, tiny_data, "straight", checkpoint={"interval_steps": 2}, **sections)
    stopped = tmp_path / "stopped"
    shutil.copytree(straight / "checkpoints" / "step_4", stopped / "checkpoints" / "step_4")
    run(tmp_path, tiny_data, "stopped", resume_from="auto", **sections)
    assert max_difference(weights(straight, "epoch_2"), weights(stopped, "epoch_2")) == 0


def jpeg_folders(root):
    """(train_dir, val_dir): 3 classes of noisy 96x72 JPEGs, 8 + 4 each, large enough for scaled decoding."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 4)):
        for k in range(3):
            (root / split / f"c{k}").mkdir(parents=True)
            for i in range(count):
                tint = np.array([80 * k, 120, 200 - 60 * k])
                pixels = np.clip(tint + rng.normal(0, 30, (72, 96, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / split / f"c{k}" / f"{i}.jpg", quality=90)
    return root / "train", root / "val"


def test_resume_mid_epoch_is_exact_with_progressive_resizing_and_scaled_jpegs(tmp_path):
    # Epoch 1 at 16 px decodes these JPEGs at 1/2 (crops of 43-72 px), epoch 2 at 24 px partly in full;
    # evaluation at 24 px (data.eval_size), which the exported preprocessing follows.
    folders = jpeg_folders(tmp_path / "data")
    sections = {"train": {"epochs": 2}, "data": {"progressive_resizing": [[0, 16], [1, 24]], "eval_size": 24}}
    straight = run(tmp_path, folders, "straight", checkpoint={"interval_steps": 2}, **sections)
    stopped = tmp_path / "stopped"  # stopped after step 4, batch 1 of epoch 2
    shutil.copytree(straight / "checkpoints" / "step_4", stopped / "checkpoints" / "step_4")
    run(tmp_path, folders, "stopped", resume_from="auto", **sections)
    assert max_difference(weights(straight, "epoch_2"), weights(stopped, "epoch_2")) == 0
    assert [row["train_size"] for row in read_jsonl(straight / "metrics.jsonl")] == [16, 24]
    assert read_jsonl(stopped / "metrics.jsonl")[-1]["train_size"] == 24
    exported = json.loads((straight / "latest" / "preprocessor_config.json").read_text())
    assert exported["crop_size"] == {"height": 24, "width": 24} and exported["size"] == {"shortest_edge": 24}


# ----------------------------------------------------------------------------- real processes

# The second save waits, its files all written to epoch_2.tmp, just before the rename that completes it:
# an audit hook (Python's own, raised by os.rename) holds it there, no hfcls code is replaced.
SLOW_SECOND_SAVE = """
import sys, time
def hold_second_rename(event, args):
    if event == "os.rename" and str(args[1]).endswith("/checkpoints/epoch_2"):
        print("saving epoch_2", flush=True)
        time.sleep(60)
sys.addaudithook(hold_second_rename)
from hfcls.cli.train import main
main(sys.argv[1:])
"""


def start_training(args, code=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "hfcls.cli.train", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process, timeout=120):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigkill_during_save_leaves_previous_checkpoint(tmp_path, tiny_data):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data, train={"epochs": 3}))
    work = tmp_path / "w"
    process = start_training([str(recipe), "--work-dir", str(work)], code=SLOW_SECOND_SAVE)
    # The second save has written all its files to epoch_2.tmp and waits to be renamed.
    wait_for(lambda: (work / "checkpoints" / "epoch_2.tmp" / "hfcls_state.json").is_file(), process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["epoch_1", "epoch_2.tmp"]
    assert find_latest_checkpoint(work) == work / "checkpoints" / "epoch_1"

    train(load_recipe(work / "recipe.yaml"), work, resume_from="auto")
    assert "resumed from" in (work / "log.txt").read_text()
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["epoch_1", "epoch_2", "epoch_3"]
    assert [row["epoch"] for row in read_jsonl(work / "metrics.jsonl")] == [1, 2, 3]


@pytest.mark.slow
def test_sigterm_saves_and_resumes(tmp_path, tiny_data):
    # Many epochs, checkpoints rarely: the one found after SIGTERM is the signal's.
    recipe = write_recipe(
        tmp_path / "r.yaml",
        tiny_recipe_dict(
            *tiny_data, train={"epochs": 500}, checkpoint={"interval": 1000}, evaluation={"interval": 1000}
        ),
    )
    work = tmp_path / "w"
    process = start_training([str(recipe), "--work-dir", str(work)])
    wait_for(lambda: (work / "metrics.jsonl").is_file(), process)
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = process.communicate(timeout=30)
    # About 1 s on an idle machine (the step, the save, the exit); room for a busy CI runner.
    assert time.monotonic() - sent < 15
    assert process.returncode == 128 + signal.SIGTERM
    assert "stopped by SIGTERM" in err and "--resume-from auto" in err
    latest = find_latest_checkpoint(work)
    assert f"checkpoint saved to {latest}." in err
    state = read_state(latest)
    assert state.step >= 3 and latest.name in (f"epoch_{state.epoch}", f"step_{state.step}")

    # Resume it, finishing one epoch later (a changed epoch count is allowed).
    recipe = load_recipe(work / "recipe.yaml", [f"train.epochs={state.epoch + 1}"])
    train(recipe, work, resume_from="auto")
    final = read_state(find_latest_checkpoint(work))
    assert (final.epoch, final.step) == (state.epoch + 1, 3 * (state.epoch + 1))
    assert yaml.safe_load((work / "recipe.yaml").read_text())["train"]["epochs"] == state.epoch + 1
