"""train.log_with: TensorBoard by default, steps that continue across a resume; unknown or missing trackers."""

import sys

import pytest

from hfcls.api import train
from hfcls.engine.trackers import installed_trackers, tracker_installed
from hfcls.errors import HfclsError
from hfcls.logs import read_jsonl
from hfcls.recipe import load_recipe

from conftest import tiny_recipe_dict, write_recipe


def recipe_for(tmp_path, folders, **sections):
    return load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*folders, **sections)))


def tensorboard_scalars(work_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(work_dir / "tensorboard" / "hfcls"))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def test_tensorboard_by_default_with_steps_across_resume(tmp_path, tiny_data):
    unset = {"log_with": None}  # the test recipe turns TensorBoard off
    train(recipe_for(tmp_path, tiny_data, train=unset), tmp_path / "w")
    train(recipe_for(tmp_path, tiny_data, train={**unset, "epochs": 2}), tmp_path / "w", resume_from="auto")
    rows = read_jsonl(tmp_path / "w" / "metrics.jsonl")
    logged = sorted(tensorboard_scalars(tmp_path / "w", "loss"))
    assert logged == [(3, pytest.approx(rows[0]["loss"])), (6, pytest.approx(rows[1]["loss"]))]


def test_unknown_or_missing_tracker_is_an_error(tmp_path, tiny_data):
    with pytest.raises(HfclsError, match="unknown tracker 'tensorbord' \\(did you mean \"tensorboard\"\\?\\)"):
        train(recipe_for(tmp_path, tiny_data, train={"log_with": ["tensorbord"]}), tmp_path / "w")
    assert not installed_trackers([])
    if not tracker_installed("swanlab"):
        with pytest.raises(HfclsError, match="swanlab is not installed"):
            installed_trackers(["swanlab"])


def test_tensorboard_is_an_extra_named_where_it_is_missing(monkeypatch):
    for module in ("tensorboard", "tensorboardX"):  # what Accelerate looks for
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(HfclsError, match='tensorboard is not installed; pip install "hfcls\\[tensorboard\\]"'):
        installed_trackers(["tensorboard"])


def test_trackers_are_told_the_recipe(tmp_path, tiny_data):
    import yaml

    train(recipe_for(tmp_path, tiny_data, train={"epochs": 1, "log_with": ["tensorboard"]}), tmp_path / "w")
    hparams = yaml.safe_load(next((tmp_path / "w" / "tensorboard").rglob("hparams.yml")).read_text())
    assert hparams["optim.lr"] == 0.01 and hparams["optim.type"] == "adamw"
    assert hparams["data.batch_size"] == 8 and hparams["train.epochs"] == 1
    assert hparams["model.config.model_type"] == "resnet"
