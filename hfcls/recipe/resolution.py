"""The resolutions a recipe trains and evaluates at: progressive resizing (data.progressive_resizing)
and evaluation at another size (data.eval_size). Plain data, no torch: validation finishes both keys
once, and the training loop asks `train_side` for each epoch's side.

Progressive resizing trains the early epochs on smaller crops, which cost less per image (a ResNet's
work grows with the pixels: 160 px is half the work of 224 px); FFCV's ResNet recipes ramp 160 -> 192
and evaluate at 256 (Leclerc et al., 2023). Evaluating above the final training side is the FixRes
effect (Touvron et al., 2019): RandomResizedCrop enlarges objects, so a model sees them at their
training size when tested on a larger image. The side of each epoch is a function of the epoch
alone, so a run resumed in the middle of an epoch continues at that epoch's side.
"""

from __future__ import annotations

from hfcls.errors import HfclsError
from hfcls.recipe.ranges import is_number


def check_progressive_resizing(data, where: str) -> list | None:
    """data.progressive_resizing as [[first epoch, side], ...]: from epoch 0, epochs rising, sides
    whole numbers >= 8; only where the train pipeline starts with the RandomResizedCrop it resizes,
    in DataLoader workers."""
    schedule = data.progressive_resizing
    if schedule is None:
        return None
    example = "e.g. [[0, 160], [6, 192], [12, 224]]"
    pairs = schedule if isinstance(schedule, list) and schedule else [None]
    if not all(isinstance(p, list) and len(p) == 2 and all(is_number(v, int) for v in p) for p in pairs):
        raise HfclsError(
            f"{where}: data.progressive_resizing must be a list of [first epoch, side] pairs of whole "
            f"numbers, {example}; got {schedule!r}"
        )
    epochs = [epoch for epoch, _ in schedule]
    if epochs[0] != 0 or any(later <= earlier for earlier, later in zip(epochs, epochs[1:])):
        raise HfclsError(
            f"{where}: data.progressive_resizing must start at epoch 0 with its epochs rising, "
            f"{example}; got epochs {epochs}"
        )
    small = [side for _, side in schedule if side < 8]
    if small:
        raise HfclsError(f"{where}: data.progressive_resizing: side {small[0]} is below 8 px; give sides of 8 or more")
    first = (
        data.train_pipeline[0].get("type") if data.train_pipeline and isinstance(data.train_pipeline[0], dict) else None
    )
    if first != "RandomResizedCrop":
        raise HfclsError(
            f"{where}: data.progressive_resizing sets the side of the train pipeline's first step, a "
            f"RandomResizedCrop; data.train_pipeline starts with {first}: put a RandomResizedCrop first "
            "or unset data.progressive_resizing"
        )
    if data.in_memory or data.decode != "workers":
        raise HfclsError(
            f"{where}: data.progressive_resizing resizes in DataLoader workers; set data.in_memory=false "
            "and data.decode=workers, or unset data.progressive_resizing"
        )
    return [list(pair) for pair in schedule]


def train_side(schedule: list | None, epoch: int) -> int | None:
    """The training crop's side in `epoch` (0-based) under a checked schedule; None: the pipeline's own."""
    if schedule is None:
        return None
    return [side for first, side in schedule if first <= epoch][-1]


def eval_pipeline_at(specs: list, size: int | None, where: str) -> list:
    """The eval pipeline [Resize(R), CenterCrop(C)] made to evaluate at `size`: CenterCrop(size) and
    Resize(round(size x R / C)), the ratio of resize to crop (timm's crop_pct) kept. The same pipeline
    again for an unset `size`, or for one it already evaluates at."""
    if size is None:
        return specs
    names = [spec.get("type") if isinstance(spec, dict) else spec for spec in specs]
    sides = [_square_side(spec.get("size")) for spec in specs] if names == ["Resize", "CenterCrop"] else [None]
    if None in sides:
        raise HfclsError(
            f"{where}: data.eval_size scales an eval pipeline of [Resize(R), CenterCrop(C)] with one "
            f"side each; data.eval_pipeline is {specs!r}: write the pipeline at that size instead"
        )
    resize, crop = sides
    return [
        {**specs[0], "size": _same_form(specs[0]["size"], round(size * resize / crop))},
        {**specs[1], "size": _same_form(specs[1]["size"], size)},
    ]


def _square_side(size) -> int | None:
    """The side of a size given as N, [N] or [N, N]; None for any other."""
    if isinstance(size, list) and len(size) in (1, 2) and len(set(size)) == 1:
        size = size[0]
    return size if is_number(size, int) else None


def _same_form(size, side: int):
    return [side] * len(size) if isinstance(size, list) else side
