"""The NaN guard: a non-finite loss stops the run (naming the step and the last good checkpoint), or is
skipped up to train.max_bad_steps; without skipping, losses are read back at log intervals, not every step."""

import math

import pytest
import torch
from safetensors.torch import load_file

from hfcls.artifacts.checkpoint import TrainState, read_state
from hfcls.engine.guard import NanGuard
from hfcls.engine.loop import train_epochs
from hfcls.engine.setup import accelerator_session
from hfcls.errors import HfclsError
from hfcls.logs import read_jsonl
from hfcls.recipe import load_recipe

from conftest import built_run, fresh_state, tiny_recipe_dict, write_recipe


def recipe_for(tmp_path, folders, **sections):
    sections["train"] = {"log_with": [], **sections.get("train", {})}
    return load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*folders, **sections)))


def checkpoint_names(work_dir):
    folder = work_dir / "checkpoints"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def nan_on_forward(model, *bad_calls) -> list:
    """Make the logits (so the loss) NaN on the given 1-based training forwards; returns the
    list the training forwards are counted in."""
    forwards = []

    def hook(module, inputs, output):
        if not module.training:
            return output
        forwards.append(1)
        if len(forwards) in bad_calls:
            output["logits"] = output["logits"] * math.nan
        return output

    model.register_forward_hook(hook)
    return forwards


# ----------------------------------------------------------------------------- in the loop


def test_nan_loss_stops_with_step_and_last_checkpoint(tmp_path, tiny_data):
    work = tmp_path / "w"
    with built_run(recipe_for(tmp_path, tiny_data, train={"epochs": 2}), work) as run:
        nan_on_forward(run.model, 5)  # epoch 2, batch 2
        with pytest.raises(
            HfclsError,
            match=r"loss is nan at epoch 2, batch 2, optimizer step 5 .*"
            r"last good checkpoint: \S+/checkpoints/epoch_1\b",
        ):
            train_epochs(run, fresh_state(run), validate=True)
    assert checkpoint_names(work) == ["epoch_1"]


@pytest.mark.parametrize(
    "bad, read_after, where, kept",
    [
        (1, 2, "epoch 1, batch 1, optimizer step 1 ", []),  # read after batch 2
        (3, 3, "epoch 1, batch 3, optimizer step 3 ", []),  # read at the epoch's end, before evaluating or saving
        (4, 5, "epoch 2, batch 1, optimizer step 4 ", ["epoch_1"]),  # read after batch 2 of epoch 2
    ],
)
def test_losses_are_read_back_at_log_intervals_not_each_step(tmp_path, tiny_data, bad, read_after, where, kept):
    # 3 steps per epoch, log_interval 2: the losses are read after batch 2 and at each epoch's end. A check at
    # every step would stop right after the bad forward; found later, the bad step is still named exactly.
    work = tmp_path / "w"
    with built_run(recipe_for(tmp_path, tiny_data, train={"epochs": 2, "log_interval": 2}), work) as run:
        forwards = nan_on_forward(run.model, bad)
        evaluated = []
        run.model.register_forward_hook(
            lambda module, inputs, output: evaluated.append(1) if not module.training else None
        )
        with pytest.raises(HfclsError, match=f"loss is nan at {where}"):
            train_epochs(run, fresh_state(run), validate=True)
    assert len(forwards) == read_after
    assert len(evaluated) == (2 if kept else 0)  # nothing evaluated after the bad step
    assert checkpoint_names(work) == kept


def test_max_bad_steps_tolerates_and_skips(tmp_path, tiny_data):
    work = tmp_path / "w"
    with built_run(recipe_for(tmp_path, tiny_data, train={"max_bad_steps": 1}), work) as run:
        forwards = nan_on_forward(run.model, 2)
        _, last = train_epochs(run, fresh_state(run), validate=True)
    assert len(forwards) == 3
    assert last == work / "checkpoints" / "epoch_1"  # the folder the save returned
    weights = load_file(work / "checkpoints" / "epoch_1" / "model.safetensors")
    assert all(torch.isfinite(value).all() for value in weights.values())
    state = read_state(work / "checkpoints" / "epoch_1")
    assert (state.bad_steps, state.step) == (1, 3)
    assert math.isfinite(read_jsonl(work / "metrics.jsonl")[0]["loss"])


# ----------------------------------------------------------------------------- the guard alone


@pytest.fixture
def accelerator(tiny_recipe):
    with accelerator_session(load_recipe(tiny_recipe)) as accelerator:
        yield accelerator


def test_without_skipping_the_verdict_waits_for_the_check(accelerator):
    state = TrainState(epoch=1, step=7)
    guard = NanGuard(accelerator, state, max_bad_steps=0)
    running = torch.tensor(0.0)
    for i, loss in enumerate([1.5, 2.5]):
        assert guard.at(i).admits(torch.tensor(loss))
        running += loss
    assert guard.checked(running) == 4.0 and state.bad_steps == 0
    for i, loss in enumerate([1.0, float("inf"), float("nan")], start=2):
        assert guard.at(i).admits(torch.tensor(loss))  # no read-back: the step goes ahead
    with pytest.raises(
        HfclsError,
        match=r"loss is inf at epoch 2, batch 4, optimizer step 8 \(1 non-finite so far, "
        r"train\.max_bad_steps=0\); last good checkpoint: none yet\. Lower optim\.lr",
    ):
        guard.checked(running)
    assert state.bad_steps == 1
    assert guard.checked(running) == 4.0  # the losses read are forgotten


def test_with_skipping_a_bad_step_is_refused_until_the_limit(accelerator):
    state = TrainState()
    guard = NanGuard(accelerator, state, max_bad_steps=2)
    assert guard.at(0).admits(torch.tensor(0.5))
    assert not guard.at(1).admits(torch.tensor(float("nan")))
    assert not guard.at(2).admits(torch.tensor(float("-inf")))
    assert state.bad_steps == 2
    with pytest.raises(
        HfclsError,
        match=r"loss is nan at epoch 1, batch 4, optimizer step 1 \(3 non-finite so far, "
        r"train\.max_bad_steps=2\)",
    ):
        guard.at(3).admits(torch.tensor(float("nan")))
    assert guard.checked(torch.tensor(3.0)) == 3.0
