"""Evaluation and checkpoint policy, --load-from, the NaN guard, trackers and hfcls-plot."""

import math

import pytest
import torch
from conftest import make_image_folder, tiny_recipe_dict, write_recipe
from PIL import Image
from safetensors.torch import load_file

from hfcls import engine
from hfcls.checkpoints import read_state
from hfcls.engine import train
from hfcls.errors import HfclsError
from hfcls.logs import read_jsonl
from hfcls.recipe import load_recipe
from hfcls.tools import plot
from hfcls.trackers import tracker_installed, trackers
from hfcls.train import cli


def recipe_for(tmp_path, folders, name="r", overrides=(), **sections):
    return load_recipe(write_recipe(tmp_path / f"{name}.yaml", tiny_recipe_dict(*folders, **sections)), overrides)


def checkpoint_names(work_dir):
    return sorted(p.name for p in (work_dir / "checkpoints").iterdir())


# ----------------------------------------------------------------------------- policy


def test_no_validate_trains_without_val_data(tmp_path, tiny_data):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data, data={"val": None}))
    cli([str(recipe), "--work-dir", str(tmp_path / "w"), "--no-validate"])
    rows = read_jsonl(tmp_path / "w" / "metrics.jsonl")
    assert len(rows) == 1 and not any(key.startswith("val_") for key in rows[0])
    assert (tmp_path / "w" / "latest" / "model.safetensors").is_file()
    assert not (tmp_path / "w" / "best").exists()


def test_evaluation_interval_and_save_best(tmp_path, tiny_data):
    train(recipe_for(tmp_path, tiny_data, train={"epochs": 3}, evaluation={"interval": 2}), tmp_path / "w")
    rows = read_jsonl(tmp_path / "w" / "metrics.jsonl")
    assert ["val_accuracy_top1" in row for row in rows] == [False, True, True]  # every 2nd, and the last
    best = max((row for row in rows if "val_accuracy_top1" in row), key=lambda row: row["val_accuracy_top1"])
    state = read_state(tmp_path / "w" / "checkpoints" / "epoch_3")
    assert (state.best_epoch, state.best_metric) == (best["epoch"], best["val_accuracy_top1"])


def test_max_keep_deletes_oldest_but_keeps_best(tmp_path, tiny_data):
    # rule less on accuracy: the first (worst) epoch is the "best" one, so it must survive pruning.
    recipe = recipe_for(tmp_path, tiny_data, train={"epochs": 3}, checkpoint={"max_keep": 1},
                        evaluation={"save_best": "accuracy_top1", "rule": "less"})
    train(recipe, tmp_path / "w")
    accuracies = [row["val_accuracy_top1"] for row in read_jsonl(tmp_path / "w" / "metrics.jsonl")]
    assert accuracies[0] < min(accuracies[1:])
    assert checkpoint_names(tmp_path / "w") == ["epoch_1", "epoch_3"]


def test_save_optimizer_false_writes_no_optimizer_and_resumes(tmp_path, tiny_data):
    train(recipe_for(tmp_path, tiny_data, checkpoint={"save_optimizer": False}), tmp_path / "w")
    folder = tmp_path / "w" / "checkpoints" / "epoch_1"
    assert not list(folder.glob("optimizer*")) and (folder / "model.safetensors").is_file()
    train(recipe_for(tmp_path, tiny_data, train={"epochs": 2}, checkpoint={"save_optimizer": False}),
          tmp_path / "w", resume_from="auto")
    assert "the optimizer starts afresh" in (tmp_path / "w" / "log.txt").read_text()
    assert read_state(tmp_path / "w" / "checkpoints" / "epoch_2").step == 6


# ----------------------------------------------------------------------------- load-from

TEN_COLOURS = {f"c{i}": (25 * i, 255 - 25 * i, (90 * i) % 256) for i in range(10)}


@pytest.fixture
def ten_class_run(tmp_path):
    folders = [make_image_folder(tmp_path / "ten" / split, per_class=2, classes=TEN_COLOURS) for split in ("a", "b")]
    train(recipe_for(tmp_path, folders, "ten"), tmp_path / "ten_run")
    return tmp_path / "ten_run"


@pytest.mark.parametrize("source", ["checkpoints/epoch_1", "best"])
def test_load_from_a_ten_class_model_into_three_classes(tmp_path, tiny_data, ten_class_run, source, caplog):
    # lr 0: what the run starts from is what it ends with (parameters; BN statistics still move).
    recipe = recipe_for(tmp_path, tiny_data, optim={"lr": 0.0})
    train(recipe, tmp_path / "w", load_from=str(ten_class_run / source))
    assert "re-initialised (shape differs, another class count): classifier.1.weight, classifier.1.bias" in caplog.text
    loaded = load_file(tmp_path / "w" / "checkpoints" / "epoch_1" / "model.safetensors")
    original = load_file(ten_class_run / "checkpoints" / "epoch_1" / "model.safetensors")
    key = "resnet.encoder.stages.1.layers.0.layer.1.convolution.weight"
    assert torch.equal(loaded[key], original[key])
    assert loaded["classifier.1.weight"].shape == (3, 16) and original["classifier.1.weight"].shape == (10, 16)
    assert read_state(tmp_path / "w" / "checkpoints" / "epoch_1").epoch == 1  # started at epoch 0


def test_load_from_another_architecture_names_key_and_shapes(tmp_path, tiny_data, ten_class_run):
    recipe = recipe_for(tmp_path, tiny_data, overrides=["model.config.hidden_sizes=[8,12]"])
    # The first differing key in the model's own order.
    with pytest.raises(HfclsError, match=r"resnet\.encoder\.stages\.1\.layers\.0\.shortcut\.convolution\.weight has "
                                         r"shape \(16, 8, 1, 1\) in the checkpoint but \(12, 8, 1, 1\) in the recipe's"):
        train(recipe, tmp_path / "w", load_from=str(ten_class_run / "best"))
    recipe = recipe_for(tmp_path, tiny_data, overrides=["model.config.depths=[1,2]"])
    with pytest.raises(HfclsError, match=r"the checkpoint has no resnet\.encoder\.stages\.1\.layers\.1\.\S+ \(shape"):
        train(recipe, tmp_path / "w2", load_from=str(ten_class_run / "best"))


def test_load_from_unknown_hub_id_offline(tmp_path, tiny_data):
    with pytest.raises(HfclsError, match="not a local path, and not loadable from the Hub"):
        train(recipe_for(tmp_path, tiny_data), tmp_path / "w", load_from="nobody/no-such-model")


# ----------------------------------------------------------------------------- NaN guard


@pytest.fixture
def nan_on_call(monkeypatch):
    """Make the loss NaN on the given (1-based) calls."""
    calls = []

    def install(*bad_calls):
        loss = engine.classification_loss

        def maybe_nan(*args):
            calls.append(1)
            value = loss(*args)
            return value * math.nan if len(calls) in bad_calls else value

        monkeypatch.setattr(engine, "classification_loss", maybe_nan)

    return install


def test_nan_loss_stops_with_step_and_last_checkpoint(tmp_path, tiny_data, nan_on_call):
    nan_on_call(5)  # epoch 2, batch 2
    work = tmp_path / "w"
    with pytest.raises(HfclsError, match=r"loss is nan at epoch 2, batch 2, optimizer step 5 .*"
                                         r"last good checkpoint: \S+/checkpoints/epoch_1\b"):
        train(recipe_for(tmp_path, tiny_data, train={"epochs": 2}), work)
    assert checkpoint_names(work) == ["epoch_1"]


def test_losses_are_read_back_at_log_intervals_not_each_step(tmp_path, tiny_data, nan_on_call, monkeypatch):
    reads, per_step = [], []
    read = engine.LossWatch.read
    monkeypatch.setattr(engine.LossWatch, "read", lambda self, running: reads.append(len(self.flags)) or read(self, running))
    monkeypatch.setattr(engine, "loss_is_finite", lambda *args: per_step.append(1))
    nan_on_call(4)  # epoch 2, batch 1: found at the read after batch 2, named exactly
    with pytest.raises(HfclsError, match=r"loss is nan at epoch 2, batch 1, optimizer step 4 "):
        train(recipe_for(tmp_path, tiny_data, train={"epochs": 2, "log_interval": 2}), tmp_path / "w")
    # 3 steps per epoch: read after batch 2 and at the epoch's end, then after batch 2 again.
    assert reads == [2, 1, 2] and per_step == []
    assert checkpoint_names(tmp_path / "w") == ["epoch_1"]


def test_max_bad_steps_tolerates_and_skips(tmp_path, tiny_data, nan_on_call):
    nan_on_call(2)
    train(recipe_for(tmp_path, tiny_data, train={"max_bad_steps": 1}), tmp_path / "w")
    weights = load_file(tmp_path / "w" / "checkpoints" / "epoch_1" / "model.safetensors")
    assert all(torch.isfinite(value).all() for value in weights.values())
    state = read_state(tmp_path / "w" / "checkpoints" / "epoch_1")
    assert (state.bad_steps, state.step) == (1, 3)
    assert math.isfinite(read_jsonl(tmp_path / "w" / "metrics.jsonl")[0]["loss"])


# ----------------------------------------------------------------------------- progress


def tensorboard_scalars(work_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(work_dir / "tensorboard" / "hfcls"))
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars(tag)]


def test_tensorboard_by_default_with_steps_across_resume(tmp_path, tiny_data):
    train(recipe_for(tmp_path, tiny_data), tmp_path / "w")
    train(recipe_for(tmp_path, tiny_data, train={"epochs": 2}), tmp_path / "w", resume_from="auto")
    rows = read_jsonl(tmp_path / "w" / "metrics.jsonl")
    logged = sorted(tensorboard_scalars(tmp_path / "w", "loss"))
    assert logged == [(3, pytest.approx(rows[0]["loss"])), (6, pytest.approx(rows[1]["loss"]))]


def test_unknown_or_missing_tracker_is_an_error(tmp_path, tiny_data):
    with pytest.raises(HfclsError, match="unknown tracker 'tensorbord' \\(did you mean \"tensorboard\"\\?\\)"):
        train(recipe_for(tmp_path, tiny_data, train={"log_with": ["tensorbord"]}), tmp_path / "w")
    assert not trackers([])
    if not tracker_installed("swanlab"):
        with pytest.raises(HfclsError, match="swanlab is not installed"):
            trackers(["swanlab"])


def test_plot_draws_the_curves(tmp_path, tiny_data):
    train(recipe_for(tmp_path, tiny_data, train={"epochs": 2}), tmp_path / "w")
    plot.cli([str(tmp_path / "w"), "--out", str(tmp_path / "curves.png")])
    with Image.open(tmp_path / "curves.png") as image:
        assert image.size == (1500, 400)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20  # not a blank canvas
    plot.cli([str(tmp_path / "w")])
    assert (tmp_path / "w" / "curves.png").is_file()


def test_plot_without_metrics_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        plot.cli([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "metrics.jsonl does not exist" in capsys.readouterr().err
