"""Ranges: every number of a recipe has one, and a value outside it is refused by key."""

import dataclasses
import typing

import pytest

from hfcls.errors import HfclsError
from hfcls.recipe.load import load_recipe
from hfcls.recipe.ranges import NUMBER_LISTS, RANGES, in_interval
from hfcls.recipe.schema import EMA_DEFAULTS, Recipe


def numeric_keys(cls=Recipe, prefix=""):
    """Every int or float key of the recipe's sections, dotted."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            yield from numeric_keys(hint, f"{prefix}{field.name}.")
        elif {int, float} & set(typing.get_args(hint) or (hint,)):
            yield f"{prefix}{field.name}"


def test_every_number_of_a_recipe_has_a_range():
    missing = [key for key in [*numeric_keys(), *NUMBER_LISTS] if key not in RANGES]
    assert missing == []
    assert {f"train.ema.{key}" for key, value in EMA_DEFAULTS.items() if not isinstance(value, bool)} <= set(RANGES)
    assert "data.max_image_pixels" in RANGES and "seed" in RANGES


@pytest.mark.parametrize(
    "interval, inside, outside",
    [
        ("[1, inf)", [1, 10**9], [0, -1]),
        ("(0, inf)", [1e-12, 5], [0, -1e-12]),
        ("[0, 1)", [0, 0.999], [1, -0.1]),
        ("(0, 1]", [1, 0.5], [0, 1.5]),
        ("[1, 65535]", [1, 65535], [0, 65536]),
    ],
)
def test_intervals_include_and_exclude_their_ends(interval, inside, outside):
    assert all(in_interval(value, interval) for value in inside)
    assert not any(in_interval(value, interval) for value in outside)


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=-1", "optim.lr must be at least 0, got -1.0"),
        ("optim.lr=.nan", "optim.lr must be a finite number, got nan"),
        ("optim.lr=.inf", "optim.lr must be a finite number, got inf"),
        ("optim.betas=[2,3]", "optim.betas must be in [0, 1), got [2, 3]"),
        ("optim.betas=[0.9]", "optim.betas must be a list of 2 numbers, got [0.9]"),
        ("optim.momentum=-5", "optim.momentum must be in [0, 1), got -5.0"),
        ("optim.weight_decay=-1", "optim.weight_decay must be at least 0, got -1.0"),
        ("optim.eps=0", "optim.eps must be above 0, got 0.0"),
        ("optim.lr_mult={backbone.: -1}", "optim.lr_mult must be at least 0, got {'backbone.': -1}"),
        ("optim.lr_mult={backbone.: .nan}", "optim.lr_mult.backbone. must be a number, got nan"),
        ("seed=-1", "seed must be in [0, 4294967295], got -1"),
        ("seed=4294967296", "seed must be in [0, 4294967295]"),
        ("train.label_smoothing=5", "train.label_smoothing must be in [0, 1), got 5.0"),
        ("train.clip_grad_norm=-1", "train.clip_grad_norm must be above 0, got -1.0"),
        ("train.mixup_alpha=-0.2", "train.mixup_alpha must be at least 0"),
        ("train.ema={decay: abc}", "train.ema.decay must be a number in (0, 1), got 'abc'"),
        ("train.ema={decay: 1.5}", "train.ema.decay must be a number in (0, 1), got 1.5"),
        ("train.ema={every_n_steps: 0}", "train.ema.every_n_steps must be a whole number at least 1, got 0"),
        ("train.auto_scale_lr={base_batch_size: 0}", "train.auto_scale_lr.base_batch_size must be at least 1"),
        ("data.eval_batch_size=-1", "data.eval_batch_size must be at least 1, got -1"),
        ("data.prefetch_factor=0", "data.prefetch_factor must be at least 1"),
        ("data.max_image_pixels=0", "data.max_image_pixels must be at least 1"),
        ("data.std=[0,0,0]", "data.std must be in (0, 1], got [0, 0, 0]"),
        ("data.mean=[-0.1,0.5,0.5]", "data.mean must be in [0, 1]"),
        ("data.train_val_split=.nan", "data.train_val_split must be a finite number"),
        (
            "data.train_pipeline.0.size=0",
            "data.train_pipeline[0].size (RandomCrop) must be a whole number (or a list of them) at least 1, got 0",
        ),
        ("data.train_pipeline.0.size=[8,0]", "data.train_pipeline[0].size (RandomCrop)"),
        ("data.eval_pipeline.0.size=abc", "data.eval_pipeline[0].size (Resize)"),
        (
            "data.train_pipeline=[{type: RandomHorizontalFlip, p: 2}]",
            "data.train_pipeline[0].p (RandomHorizontalFlip) must be a number in [0, 1], got 2",
        ),
        ("schedule.gamma=-1", "schedule.gamma must be above 0, got -1.0"),
        ("schedule.steps=[abc]", "schedule.steps must be a list of whole numbers, got ['abc']"),
        ("schedule.steps=[0]", "schedule.steps must be at least 1"),
        ("schedule.warmup_epochs=-3", "schedule.warmup_epochs must be at least 0, got -3.0"),
        ("schedule.warmup_steps=-1", "schedule.warmup_steps must be at least 0"),
        ("evaluation.topk=[0]", "evaluation.topk must be at least 1, got [0]"),
        ("dist.port=70000", "dist.port must be in [1, 65535], got 70000"),
        ("dist.timeout_minutes=0", "dist.timeout_minutes must be above 0"),
        ("checkpoint.max_keep=0", "checkpoint.max_keep must be at least 1"),
    ],
)
def test_a_number_out_of_its_range_is_refused_by_key(based, override, message):
    with pytest.raises(HfclsError) as error:
        load_recipe(based, [override])
    assert message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    "override",
    [
        "optim.lr=0",
        "optim.momentum=0",
        "train.label_smoothing=0",
        "seed=4294967295",
        "dist.port=65535",
        "data.mean=[0,1,0.5]",
        "data.std=[1,1,1]",
        "train.ema={decay: 0.5, every_n_steps: 3}",
        "schedule.steps=[1, 90]",
        "data.train_pipeline.0.size=[8,8]",
        "optim.lr=1e-3",
    ],
)
def test_values_at_the_ends_of_their_ranges_are_accepted(based, override):
    load_recipe(based, [override])
