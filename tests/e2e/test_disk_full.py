"""A full or read-only disk under a real run: one line, exit 2, nothing lost, and the run resumes exactly once
there is room. On a small tmpfs the test mounts (root only; skipped otherwise). The commands run their
main([...]) in this process."""

import shutil
import subprocess

import pytest

from hfcls.api import train
from hfcls.artifacts.checkpoint import read_state
from hfcls.artifacts.loading import load_model
from hfcls.recipe import load_recipe

from commands import user_error
from conftest import deterministic_rows, max_difference, tiny_recipe_dict, weights, write_recipe
from disks import fill, leave_free, small_tmpfs


def snapshot(work, skip=("log.txt", "recipe.yaml", "filler")):
    return {
        str(p.relative_to(work)): p.read_bytes() for p in sorted(work.rglob("*")) if p.is_file() and p.name not in skip
    }


@pytest.fixture
def recipe(tmp_path, tiny_data):
    return write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data, train={"epochs": 1, "deterministic": True}))


def test_a_disk_that_fills_before_or_during_a_run_loses_nothing(tmp_path, recipe, command):
    straight = tmp_path / "straight"
    train(load_recipe(recipe, ["train.epochs=2"]), straight)
    with small_tmpfs(tmp_path / "disk", size="2m") as disk:
        work = disk / "w"
        train(load_recipe(recipe), work)
        before = snapshot(work)
        # Full: refused before any training, at the work dir's lock.
        fill(disk)
        user_error(
            command("hfcls-train", recipe, "--work-dir", work, "--resume-from", "auto", "train.epochs=2"),
            "No space left on device",
        )
        assert snapshot(work) == before
        # Room for the lock, the recipe and the log, not for epoch 2's checkpoint: it fails mid-run.
        (disk / "filler").unlink()
        leave_free(disk, 96 * 1024)
        line = user_error(
            command("hfcls-train", recipe, "--work-dir", work, "--resume-from", "auto", "train.epochs=2"),
            "cannot write",
            "No space left on device",
        )
        assert "--resume-from auto" in line or "the earlier files there are intact" in line
        after = snapshot(work)
        assert {k: v for k, v in after.items() if k.startswith("checkpoints/") or k == "metrics.jsonl"} == {
            k: v for k, v in before.items() if k.startswith("checkpoints/") or k == "metrics.jsonl"
        }
        assert [p.name for p in work.rglob("*") if p.name.endswith((".tmp", ".old"))] == []
        for export in ("best", "latest"):
            load_model(work / export)  # whole: the epoch-1 one, or epoch 2's if it fitted before the checkpoint
        # Room again: the run resumes and ends where one on a roomy disk ends.
        (disk / "filler").unlink()
        train(load_recipe(work / "recipe.yaml"), work, resume_from="auto")
        assert max_difference(weights(straight, "epoch_2"), weights(work, "epoch_2")) == 0
        assert deterministic_rows(work) == deterministic_rows(straight)


def test_a_read_only_work_dir_and_an_unwritable_out_are_refused_before_any_work(tmp_path, recipe, command):
    source = tmp_path / "source"
    train(load_recipe(recipe), source)
    with small_tmpfs(tmp_path / "disk", size="2m") as disk:
        work = shutil.copytree(source, disk / "w")
        before = snapshot(work, skip=())
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        user_error(
            command("hfcls-train", recipe, "--work-dir", work, "--resume-from", "auto", "train.epochs=2"),
            str(work),
            "Read-only file system",
        )
        evaluated = command("hfcls-eval", recipe, source / "best", "--metrics", "accuracy", "--out", work / "r.json")
        user_error(evaluated, f"--out {work / 'r.json'}", "Read-only file system", "nothing was done")
        assert "evaluating" not in evaluated.stdout  # refused before the model was even loaded
        assert snapshot(work, skip=()) == before
        assert read_state(work / "checkpoints" / "epoch_1").epoch == 1
    with small_tmpfs(tmp_path / "full", size="256k") as full:
        fill(full)
        evaluated = command("hfcls-eval", recipe, source / "best", "--metrics", "accuracy", "--out", full / "r.json")
        user_error(evaluated, "No space left on device", "nothing was done")
        assert "evaluating" not in evaluated.stdout
