"""The values every number of a recipe may take, checked by key; lists and mappings item by item."""

from __future__ import annotations

import math
import numbers
from typing import Any

from hfcls.errors import HfclsError

# As intervals; a list's items and a mapping's values each obey the range of their key.
# tests/recipe/test_ranges.py fails when a numeric key is missing here.
RANGES = {
    "seed": "[0, 4294967295]",  # NumPy's seeds are 32-bit
    "data.train_val_split": "(0, 1)",
    "data.batch_size": "[1, inf)",
    "data.eval_batch_size": "[1, inf)",
    "data.num_workers": "[0, inf)",
    "data.prefetch_factor": "[1, inf)",
    "data.max_image_pixels": "[1, inf)",
    "data.mean": "[0, 1]",
    "data.std": "(0, 1]",
    "data.steps_per_epoch": "[1, inf)",
    "data.shuffle_buffer": "[1, inf)",
    "data.oversample_thr": "(0, 1]",
    "data.eval_size": "[8, inf)",
    "optim.lr": "[0, inf)",  # 0: nothing moves but the BatchNorm statistics
    "optim.momentum": "[0, 1)",
    "optim.weight_decay": "[0, inf)",
    "optim.betas": "[0, 1)",
    "optim.eps": "(0, inf)",
    "optim.lr_mult": "[0, inf)",
    "optim.layer_decay": "(0, 1]",
    "schedule.steps": "[1, inf)",
    "schedule.gamma": "(0, inf)",
    "schedule.warmup_steps": "[0, inf)",
    "schedule.warmup_epochs": "[0, inf)",
    "train.epochs": "[1, inf)",
    "train.gradient_accumulation_steps": "[1, inf)",
    "train.clip_grad_norm": "(0, inf)",
    "train.label_smoothing": "[0, 1)",
    "train.log_interval": "[1, inf)",
    "train.mixup_alpha": "[0, inf)",
    "train.cutmix_alpha": "[0, inf)",
    "train.ema.decay": "(0, 1)",
    "train.ema.every_n_steps": "[1, inf)",
    "train.ema.warmup_power": "(0, inf)",
    "train.distill.alpha": "[0, 1]",
    "train.distill.temperature": "(0, inf)",
    "model.lora.r": "[1, inf)",
    "model.lora.alpha": "(0, inf)",
    "model.lora.dropout": "[0, 1)",
    "train.auto_scale_lr.base_batch_size": "[1, inf)",
    "train.max_bad_steps": "[0, inf)",
    "evaluation.interval": "[1, inf)",
    "evaluation.topk": "[1, inf)",
    "checkpoint.interval": "[1, inf)",
    "checkpoint.interval_steps": "[1, inf)",
    "checkpoint.max_keep": "[1, inf)",
    "dist.port": "[1, 65535]",
    "dist.timeout_minutes": "(0, inf)",
}
# Lists of numbers: (item type, item count or None for any).
NUMBER_LISTS = {
    "data.mean": (float, 3),
    "data.std": (float, 3),
    "optim.betas": (float, 2),
    "schedule.steps": (int, None),
    "evaluation.topk": (int, None),
}
# Keys of the v2 transforms in data.*_pipeline whose numbers hfcls checks with the recipe.
TRANSFORM_RANGES = {"size": "[1, inf)", "max_size": "[1, inf)", "padding": "[0, inf)", "p": "[0, 1]"}


def check_number_shapes(recipe, where: str) -> None:
    """Lists and mappings of numbers hold numbers, as many as they should."""
    for key, (kind, count) in NUMBER_LISTS.items():
        values = value_at(recipe, key)
        if (
            not isinstance(values, list)
            or (count is not None and len(values) != count)
            or not all(is_number(v, kind) for v in values)
        ):
            size = f"{count} " if count else ""
            noun = "whole numbers" if kind is int else "numbers"
            raise HfclsError(f"{where}: {key} must be a list of {size}{noun}, got {values!r}")
    scale = recipe.train.auto_scale_lr
    if scale is not None and (set(scale) != {"base_batch_size"} or not is_number(scale["base_batch_size"], int)):
        raise HfclsError(f"{where}: train.auto_scale_lr must be {{base_batch_size: N}}, got {scale!r}")
    for prefix, mult in recipe.optim.lr_mult.items():
        if not is_number(mult, float):
            raise HfclsError(f"{where}: optim.lr_mult.{prefix} must be a number, got {mult!r}")


def check_ranges(recipe, where: str) -> None:
    """Every number against its range in RANGES, the key named; lists and mappings item by item."""
    for key, interval in RANGES.items():
        value = value_at(recipe, key)
        values = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
        for item in values:
            if item is not None and not in_interval(item, interval):
                raise HfclsError(f"{where}: {key} must be {interval_text(interval)}, got {value!r}")
    for name in ("train_pipeline", "eval_pipeline"):
        check_transform_numbers(getattr(recipe.data, name), f"data.{name}", where)


def value_at(recipe, key: str):
    """The value of a dotted key; None when a mapping on the way (train.ema) is unset."""
    node: Any = recipe
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part)
        if node is None:
            return None
    return node


def is_number(value, kind) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, int) if kind is int else math.isfinite(value)


def in_interval(value, interval: str) -> bool:
    """Whether `value` lies in an interval written as "[0, 1)", "(0, inf)", ..."""
    low, high = (float(end) for end in interval[1:-1].split(","))
    above = value >= low if interval[0] == "[" else value > low
    below = value <= high if interval[-1] == "]" else value < high
    return above and below


def interval_text(interval: str) -> str:
    """ "[1, inf)" -> "at least 1", "(0, inf)" -> "above 0", "[0, 1)" -> "in [0, 1)" """
    low, high = (end.strip() for end in interval[1:-1].split(","))
    if high == "inf":
        return f"at least {low}" if interval[0] == "[" else f"above {low}"
    return f"in {interval}"


def check_transform_numbers(specs: list, key: str, where: str) -> None:
    """The sizes, paddings and probabilities of a pipeline's transforms, before torchvision sees them."""
    if not isinstance(specs, list):
        return
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            continue  # hfcls.data.transforms names what is wrong with it
        for name, interval in TRANSFORM_RANGES.items():
            value = spec.get(name)
            if value is None:
                continue
            kind = float if name == "p" else int
            items = value if isinstance(value, list) and kind is int else [value]
            if not items or not all(is_number(v, kind) and in_interval(v, interval) for v in items):
                what = "a number" if kind is float else "a whole number (or a list of them)"
                raise HfclsError(
                    f"{where}: {key}[{i}].{name} ({spec.get('type')}) must be {what} "
                    f"{interval_text(interval)}, got {value!r}"
                )
