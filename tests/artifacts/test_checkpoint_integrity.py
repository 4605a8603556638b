"""What counts as an intact checkpoint, what `--resume-from auto` does with a damaged newest one, the rows a
resume restores, what a new run refuses to overwrite, and crafted pickles in a checkpoint that must not run."""

import json
import logging
import shutil

import pytest
import torch

from hfcls.api import train
from hfcls.artifacts.checkpoint import STATE_FILE, read_state
from hfcls.artifacts.loading import load_model
from hfcls.artifacts.run_dir import resolve_resume, restore_rows, scan_checkpoints
from hfcls.errors import HfclsError
from hfcls.recipe import load_recipe

from conftest import deterministic_rows, make_image_folder, max_difference, tiny_recipe_dict, weights, write_recipe
from crafted import RunsCommand

pytestmark = pytest.mark.xdist_group("checkpoint_integrity")  # one worker builds the module's fixture, once


def recipe_dict(data, epochs):
    return tiny_recipe_dict(*data, train={"epochs": epochs, "deterministic": True, "publish": True})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(recipe, a finished 2-epoch work dir, a finished 3-epoch one), the same recipe otherwise."""
    root = tmp_path_factory.mktemp("integrity")
    data = (
        make_image_folder(root / "data" / "train", per_class=8, seed=0),
        make_image_folder(root / "data" / "val", per_class=4, seed=1),
    )
    recipe = write_recipe(root / "r.yaml", recipe_dict(data, 2))
    train(load_recipe(recipe), root / "two")
    train(load_recipe(write_recipe(root / "r3.yaml", recipe_dict(data, 3))), root / "three")
    return recipe, root / "two", root / "three"


@pytest.fixture
def work(runs, tmp_path):
    return shutil.copytree(runs[1], tmp_path / "w")


def edit_state(folder, **changes):
    state = json.loads((folder / STATE_FILE).read_text())
    state.update(changes)
    (folder / STATE_FILE).write_text(json.dumps(state))


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGE = {
    "state file not JSON": (lambda f: (f / STATE_FILE).write_text('{"epoch": 2, '), "not readable JSON"),
    "state file empty": (lambda f: (f / STATE_FILE).write_text(""), "not readable JSON"),
    "state file a list": (lambda f: (f / STATE_FILE).write_text("[]"), "holds a list, not a mapping"),
    "state file extra key": (lambda f: edit_state(f, surprise=1), "unknown key 'surprise'"),
    "state file wrong type": (lambda f: edit_state(f, step="six"), "key 'step' holds 'six'"),
    "weights missing": (lambda f: (f / "model.safetensors").unlink(), "model.safetensors is missing"),
    "weights truncated": (lambda f: truncate(f / "model.safetensors"), "model.safetensors has \\d+ bytes, \\d+ when"),
    "optimizer truncated": (lambda f: truncate(f / "optimizer.bin"), "optimizer.bin has"),
    "RNG state missing": (lambda f: (f / "random_states_0.pkl").unlink(), "random_states_0.pkl is missing"),
    "scheduler emptied": (lambda f: (f / "scheduler.json").write_text(""), "scheduler.json has 0 bytes"),
    "a file added": (lambda f: (f / "notes.txt").write_text("x"), "holds notes.txt, which its save did not write"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_newest_checkpoint_is_skipped_by_auto_and_refused_by_name(work, caplog, kind):
    damage, message = DAMAGE[kind]
    newest = work / "checkpoints" / "epoch_2"
    damage(newest)
    intact, damaged = scan_checkpoints(work)
    assert [folder.name for _, folder in intact] == ["epoch_1"]
    assert len(damaged) == 1 and str(damaged[0]).startswith(f"checkpoint {newest} is damaged: ")
    with caplog.at_level(logging.WARNING):
        assert resolve_resume("auto", work) == work / "checkpoints" / "epoch_1"
    assert f"--resume-from auto: skipping checkpoint {newest} is damaged" in caplog.text
    with pytest.raises(HfclsError, match=f"^checkpoint {newest} is damaged: .*{message}"):
        resolve_resume(str(newest), work)
    with pytest.raises(HfclsError, match=message):  # the reader of hfcls-eval, -publish, -demo refuses it too
        load_model(newest)


def test_auto_resumes_the_newest_intact_checkpoint_exactly(runs, work):
    recipe, _, three = runs
    truncate(work / "checkpoints" / "epoch_2" / "model.safetensors")
    lines = (work / "metrics.jsonl").read_text().splitlines()
    train(load_recipe(recipe, ["train.epochs=3"]), work, resume_from="auto")
    assert f"resumed from {work / 'checkpoints' / 'epoch_1'} at epoch 1" in (work / "log.txt").read_text()
    assert max_difference(weights(work, "epoch_3"), weights(three, "epoch_3")) == 0
    # Epoch 2 was trained again: its row replaced, not doubled.
    assert deterministic_rows(work) == deterministic_rows(three)
    assert (work / "metrics.jsonl").read_text().splitlines()[0] == lines[0]


def test_without_an_intact_checkpoint_auto_says_so(work):
    for folder in (work / "checkpoints").iterdir():
        (folder / STATE_FILE).write_text("{")
    with pytest.raises(
        HfclsError,
        match=r"no complete checkpoint under .* \(only 2 damaged \(first: checkpoint .*"
        r"pass --restart to start the run over",
    ):
        resolve_resume("auto", work)


def test_a_folder_that_is_not_a_finished_save_is_no_checkpoint(work):
    for name in ("epoch_3.tmp", "epoch_3.old", "copy_of_epoch_2"):
        shutil.copytree(work / "checkpoints" / "epoch_2", work / "checkpoints" / name)
        assert read_state(work / "checkpoints" / name) is None
    assert [folder.name for _, folder in scan_checkpoints(work)[0]] == ["epoch_1", "epoch_2"]


# ----------------------------------------------------------------------------- a new run never overwrites one


@pytest.mark.parametrize("left", ["best", "latest", "publish", "metrics.jsonl"])
def test_a_new_run_refuses_a_work_dir_with_results_but_no_checkpoint(runs, work, left):
    shutil.rmtree(work / "checkpoints")
    for name in {"best", "latest", "publish", "metrics.jsonl"} - {left}:
        shutil.rmtree(work / name) if (work / name).is_dir() else (work / name).unlink()
    before = {p: p.read_bytes() for p in work.rglob("*") if p.is_file()}
    with pytest.raises(
        HfclsError,
        match=rf"work dir {work} holds the results of an earlier run \({left}\) but no "
        "checkpoint to continue it from; nothing was changed",
    ):
        train(load_recipe(runs[0]), work)
    assert {p: p.read_bytes() for p in work.rglob("*") if p.is_file()} == before


# ----------------------------------------------------------------------------- metrics.jsonl rows on resume


def test_resume_restores_a_row_lost_after_the_save_and_drops_rows_trained_again(work):
    rows = (work / "metrics.jsonl").read_text().splitlines(keepends=True)
    state = read_state(work / "checkpoints" / "epoch_2")
    assert json.loads(rows[1]) == state.row  # the checkpoint carries its epoch's row
    # Killed between the save of epoch_2 and its row: the row comes back from the checkpoint.
    (work / "metrics.jsonl").write_text(rows[0])
    restore_rows(work, state)
    assert (work / "metrics.jsonl").read_text().splitlines(keepends=True) == rows
    # Killed while appending a later row (torn), and a row of an epoch after the checkpoint: both go.
    (work / "metrics.jsonl").write_text("".join(rows) + '{"epoch": 3, "step": 9}\n{"epoch": 4, "lo')
    restore_rows(work, state)
    assert (work / "metrics.jsonl").read_text().splitlines(keepends=True) == rows
    # A damaged line that no kill explains is named, not dropped.
    (work / "metrics.jsonl").write_text(rows[0] + "not json\n" + rows[1])
    with pytest.raises(HfclsError, match=r"metrics\.jsonl line 2 is not a JSON row"):
        restore_rows(work, state)


# ----------------------------------------------------------------------------- crafted pickles


def plant(folder, name, content):
    """Replace one state file as an attacker would: its size in hfcls_state.json updated to match."""
    torch.save(content, folder / name)
    state = json.loads((folder / STATE_FILE).read_text())
    state["files"][name] = (folder / name).stat().st_size
    (folder / STATE_FILE).write_text(json.dumps(state))


@pytest.mark.parametrize("name", ["optimizer.bin", "random_states_0.pkl"])
def test_a_crafted_pickle_in_a_checkpoint_is_refused_and_runs_nothing(runs, work, tmp_path, name):
    marker = tmp_path / "ran"
    plant(work / "checkpoints" / "epoch_2", name, {"state": RunsCommand(marker)})
    with pytest.raises(
        HfclsError,
        match=rf"^checkpoint .*epoch_2: {'a state file' if name == 'optimizer.bin' else name}"
        r" holds more than tensors and plain data \(.*(posix|os)\.system.*\); hfcls loads "
        "checkpoints with weights_only=True",
    ):
        train(load_recipe(runs[0], ["train.epochs=3"]), work, resume_from=str(work / "checkpoints" / "epoch_2"))
    assert not marker.exists()
    torch.load(work / "checkpoints" / "epoch_2" / name, weights_only=False)  # the oracle: unrestricted, it runs
    assert marker.exists()


def test_a_pickle_planted_beside_the_state_is_never_loaded(runs, work, tmp_path):
    # Accelerate loads custom_checkpoint_N.pkl with full unpickling for registered objects (hfcls registers
    # none); a file its save did not write makes the checkpoint damaged, and auto resumes the one before.
    marker = tmp_path / "ran"
    newest = work / "checkpoints" / "epoch_2"
    torch.save(RunsCommand(marker), newest / "custom_checkpoint_0.pkl")
    with pytest.raises(
        HfclsError,
        match=r"epoch_2 is damaged: it holds custom_checkpoint_0\.pkl, which its save did "
        "not write",
    ):
        resolve_resume(str(newest), work)
    train(load_recipe(runs[0], ["train.epochs=3"]), work, resume_from="auto")
    assert not marker.exists()
    assert max_difference(weights(work, "epoch_3"), weights(runs[2], "epoch_3")) == 0
