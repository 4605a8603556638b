"""Exact resume: epoch-end and mid-epoch, `auto` choice, refusals, interrupted saves."""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import REPO, tiny_recipe_dict, write_recipe
from safetensors.torch import load_file

from hfcls.checkpoints import find_latest_checkpoint, read_state
from hfcls.engine import train
from hfcls.errors import HfclsError
from hfcls.logs import read_jsonl
from hfcls.recipe import load_recipe

WALL_CLOCK = ("images_per_sec", "epoch_time")


def run(tmp_path, tiny_data, name, *, resume_from=None, overrides=(), **sections):
    sections.setdefault("train", {})
    sections["train"] = {"deterministic": True, **sections["train"]}
    path = write_recipe(tmp_path / f"{name}.yaml", tiny_recipe_dict(*tiny_data, **sections))
    recipe = load_recipe(path, overrides)
    train(recipe, tmp_path / name, resume_from=resume_from)
    return tmp_path / name


def weights(work_dir, checkpoint):
    return load_file(work_dir / "checkpoints" / checkpoint / "model.safetensors")


def max_difference(a, b):
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def deterministic_rows(work_dir):
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in read_jsonl(work_dir / "metrics.jsonl")]


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
        "epoch_1", "epoch_2", "epoch_3", "step_2", "step_4", "step_8"]
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


def test_auto_picks_newest_complete_checkpoint(tmp_path, tiny_data):
    work = run(tmp_path, tiny_data, "w", train={"epochs": 2}, checkpoint={"interval_steps": 2})
    checkpoints = work / "checkpoints"
    assert find_latest_checkpoint(work) == checkpoints / "epoch_2"
    # A half-written save (even one that got as far as its state file) and a
    # folder without a state file are never chosen.
    shutil.copytree(checkpoints / "epoch_2", checkpoints / "epoch_3.tmp")
    shutil.copytree(checkpoints / "epoch_2", checkpoints / "epoch_4")
    (checkpoints / "epoch_4" / "trainer_state.json").unlink()
    assert find_latest_checkpoint(work) == checkpoints / "epoch_2"
    shutil.rmtree(checkpoints / "epoch_2")
    assert find_latest_checkpoint(work) == checkpoints / "step_4"
    shutil.rmtree(checkpoints / "step_4")
    assert find_latest_checkpoint(work) == checkpoints / "epoch_1"  # epoch_1 (step 3) is newer than step_2


def test_work_dir_with_checkpoints_needs_resume(tmp_path, tiny_data):
    run(tmp_path, tiny_data, "w")
    with pytest.raises(HfclsError, match="already holds checkpoints .*--resume-from auto"):
        run(tmp_path, tiny_data, "w")
    before = sorted(p.name for p in (tmp_path / "w" / "checkpoints").iterdir())
    assert before == ["epoch_1"]


def test_resume_errors(tmp_path, tiny_data):
    with pytest.raises(HfclsError, match="no complete checkpoint"):
        run(tmp_path, tiny_data, "empty", resume_from="auto")
    with pytest.raises(HfclsError, match="not a complete hfcls checkpoint"):
        run(tmp_path, tiny_data, "x", resume_from=str(tmp_path))
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data)))
    with pytest.raises(HfclsError, match="--resume-from and --load-from exclude each other"):
        train(recipe, tmp_path / "both", resume_from="auto", load_from=str(tmp_path))


@pytest.mark.parametrize("override, setting", [
    ("model.config.hidden_sizes=[8,8]", "another model"),
    ("optim.type=sgd", "another optimizer: 'adamw' there, 'sgd'"),
])
def test_checkpoint_from_another_recipe_is_refused(tmp_path, tiny_data, override, setting):
    run(tmp_path, tiny_data, "w")
    with pytest.raises(HfclsError, match=setting):
        run(tmp_path, tiny_data, "w", resume_from="auto", overrides=[override])


def test_checkpoint_with_another_class_count_is_refused(tmp_path, tiny_data):
    run(tmp_path, tiny_data, "w")
    shutil.rmtree(tiny_data[0] / "fox")
    shutil.rmtree(tiny_data[1] / "fox")
    with pytest.raises(HfclsError, match="another num_classes: 3 there, 2"):
        run(tmp_path, tiny_data, "w", resume_from="auto")


# ----------------------------------------------------------------------------- real processes

SLOW_SECOND_SAVE = """
import sys, time
import hfcls.checkpoints as checkpoints
publish = checkpoints.publish
def slow_publish(tmp, folder):
    if folder.name == "epoch_2":
        print("saving epoch_2", flush=True)
        time.sleep(60)
    publish(tmp, folder)
checkpoints.publish = slow_publish
from hfcls.train import cli
cli(sys.argv[1:])
"""


def start_training(args, code=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "hfcls.train", *args]
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
    wait_for(lambda: (work / "checkpoints" / "epoch_2.tmp" / "trainer_state.json").is_file(), process)
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
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(
        *tiny_data, train={"epochs": 500}, checkpoint={"interval": 1000}, evaluation={"interval": 1000}))
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
    state = read_state(latest)
    assert state.step >= 3 and latest.name in (f"epoch_{state.epoch}", f"step_{state.step}")

    # Resume it, finishing one epoch later (a changed epoch count is allowed).
    recipe = load_recipe(work / "recipe.yaml", [f"train.epochs={state.epoch + 1}"])
    train(recipe, work, resume_from="auto")
    final = read_state(find_latest_checkpoint(work))
    assert (final.epoch, final.step) == (state.epoch + 1, 3 * (state.epoch + 1))
    assert yaml.safe_load((work / "recipe.yaml").read_text())["train"]["epochs"] == state.epoch + 1


def test_cli_bare_resume_and_overrides_after_options(tmp_path, tiny_data, capsys):
    from hfcls.train import cli

    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data))
    work = str(tmp_path / "w")
    cli([str(recipe), "--work-dir", work])
    with pytest.raises(SystemExit) as refused:
        cli([str(recipe), "--work-dir", work])
    assert refused.value.code == 2 and "already holds checkpoints" in capsys.readouterr().err
    cli([str(recipe), "--work-dir", work, "--resume", "train.epochs=2"])
    assert [row["epoch"] for row in read_jsonl(tmp_path / "w" / "metrics.jsonl")] == [1, 2]
    with pytest.raises(SystemExit) as both:
        cli([str(recipe), "--resume-from", "auto", "--load-from", work])
    assert both.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


@pytest.mark.slow
def test_two_process_mid_epoch_resume_is_exact(tmp_path):
    """Two CPU processes (gloo): sharded data, collective saves, the same exactness."""
    from conftest import make_image_folder

    folders = (make_image_folder(tmp_path / "train", per_class=16), make_image_folder(tmp_path / "val", per_class=4))
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(
        *folders, train={"epochs": 2, "deterministic": True}, checkpoint={"interval_steps": 2}))
    # Without a GPU, Accelerate runs a --multi_gpu launch as MULTI_CPU only when told to use the CPU.
    env = {**os.environ, "PYTHONPATH": str(REPO), "ACCELERATE_USE_CPU": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", "29621", "-m", "hfcls.train", str(recipe)]

    def launch_run(*args):
        subprocess.run([*launch, *args], env=env, check=True, capture_output=True, timeout=300)

    launch_run("--work-dir", str(tmp_path / "straight"))
    state = read_state(tmp_path / "straight" / "checkpoints" / "step_2")
    assert (state.epoch, state.batch_in_epoch) == (0, 2)  # 48 images / (8 x 2 processes) = 3 steps an epoch
    shutil.copytree(tmp_path / "straight" / "checkpoints" / "step_2", tmp_path / "stopped" / "checkpoints" / "step_2")
    launch_run("--work-dir", str(tmp_path / "stopped"), "--resume")
    assert max_difference(weights(tmp_path / "straight", "epoch_2"), weights(tmp_path / "stopped", "epoch_2")) == 0
    assert deterministic_rows(tmp_path / "stopped") == deterministic_rows(tmp_path / "straight")
