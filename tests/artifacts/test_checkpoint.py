"""Checkpoints: what a folder holds, which one `auto` resumes, what is refused, save_optimizer: false."""

import json
import shutil

import pytest

from hfcls.api import train
from hfcls.artifacts.checkpoint import LEGACY_STATE_FILE, SCHEDULER_FILE, STATE_FILE, read_state
from hfcls.artifacts.export import CONFIG_FILE, PREPROCESSOR_FILE, WEIGHTS_FILE
from hfcls.artifacts.run_dir import find_latest_checkpoint
from hfcls.artifacts.weights import inspect_artifact
from hfcls.cli.train import main
from hfcls.errors import HfclsError
from hfcls.recipe import load_recipe

from conftest import tiny_recipe_dict, write_recipe


def run(tmp_path, tiny_data, name, *, resume_from=None, overrides=(), **sections):
    path = write_recipe(tmp_path / f"{name}.yaml", tiny_recipe_dict(*tiny_data, **sections))
    recipe = load_recipe(path, overrides)
    train(recipe, tmp_path / name, resume_from=resume_from)
    return tmp_path / name


def test_a_checkpoint_describes_itself_and_keeps_hfcls_state_by_name(tmp_path, tiny_data):
    folder = run(tmp_path, tiny_data, "w") / "checkpoints" / "epoch_1"
    names = {p.name for p in folder.iterdir()}
    assert {STATE_FILE, CONFIG_FILE, PREPROCESSOR_FILE, WEIGHTS_FILE, SCHEDULER_FILE} <= names
    assert not [name for name in names if name.startswith("custom_checkpoint_")]  # no pickled objects of hfcls's
    assert json.loads((folder / CONFIG_FILE).read_text())["id2label"] == {"0": "cat", "1": "dog", "2": "fox"}
    assert (folder / PREPROCESSOR_FILE).read_text() == (tmp_path / "w" / "latest" / PREPROCESSOR_FILE).read_text()
    assert json.loads((folder / SCHEDULER_FILE).read_text())["last_epoch"] == 3  # 3 optimizer steps


def test_the_state_file_has_hfcls_name_and_an_earlier_one_is_refused_with_the_rename(tmp_path, tiny_data):
    work = run(tmp_path, tiny_data, "w")
    assert STATE_FILE == "hfcls_state.json" and (work / "checkpoints" / "epoch_1" / STATE_FILE).is_file()
    # A checkpoint of an earlier hfcls: its state under transformers' Trainer's file name.
    (work / "checkpoints" / "epoch_1" / STATE_FILE).rename(work / "checkpoints" / "epoch_1" / LEGACY_STATE_FILE)
    for read in (inspect_artifact, read_state):
        with pytest.raises(HfclsError, match=f"earlier hfcls.*rename it to {STATE_FILE}: mv .*{LEGACY_STATE_FILE}"):
            read(work / "checkpoints" / "epoch_1")
    # A Trainer's own trainer_state.json (its schema, not hfcls's) beside a model is a Hugging Face folder.
    trainer = shutil.copytree(work / "latest", tmp_path / "checkpoint-3")
    (trainer / LEGACY_STATE_FILE).write_text(json.dumps({"global_step": 3, "log_history": []}))
    assert inspect_artifact(trainer).kind == "hf"


def test_auto_picks_newest_complete_checkpoint(tmp_path, tiny_data):
    work = run(tmp_path, tiny_data, "w", train={"epochs": 2}, checkpoint={"interval_steps": 2})
    checkpoints = work / "checkpoints"
    assert find_latest_checkpoint(work) == checkpoints / "epoch_2"
    # A half-written save (even one that got as far as its state file) and a
    # folder without a state file are never chosen.
    shutil.copytree(checkpoints / "epoch_2", checkpoints / "epoch_3.tmp")
    shutil.copytree(checkpoints / "epoch_2", checkpoints / "epoch_4")
    (checkpoints / "epoch_4" / STATE_FILE).unlink()
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
    with pytest.raises(HfclsError, match="^resume_from and load_from exclude each other"):
        train(recipe, tmp_path / "both", resume_from="auto", load_from=str(tmp_path))


@pytest.mark.parametrize(
    "flags, line",
    [
        (["--resume-from", "auto"], "error: --resume-from auto: no complete checkpoint under "),
        (["--load-from", "nobody/no-such-model"], "error: --load-from nobody/no-such-model: not a local path"),
    ],
)
def test_hfcls_train_names_resume_from_and_load_from_by_their_flags(tmp_path, tiny_data, capsys, flags, line):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data))
    with pytest.raises(SystemExit) as exit_info:
        main([str(recipe), "--work-dir", str(tmp_path / "w"), *flags])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(line)


@pytest.mark.parametrize(
    "override, setting",
    [
        ("model.config.hidden_sizes=[8,8]", "another model"),
        ("optim.type=sgd", "another optimizer: 'adamw' there, 'sgd'"),
    ],
)
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


def test_save_optimizer_false_writes_no_optimizer_and_resumes(tmp_path, tiny_data):
    run(tmp_path, tiny_data, "w", checkpoint={"save_optimizer": False})
    folder = tmp_path / "w" / "checkpoints" / "epoch_1"
    assert not list(folder.glob("optimizer*")) and (folder / "model.safetensors").is_file()
    run(tmp_path, tiny_data, "w", resume_from="auto", train={"epochs": 2}, checkpoint={"save_optimizer": False})
    assert "the optimizer starts afresh" in (tmp_path / "w" / "log.txt").read_text()
    assert read_state(tmp_path / "w" / "checkpoints" / "epoch_2").step == 6
