"""The settings validation finishes: the mappings and lists of train.ema, train.loss and
train.log_with, checked key by key and completed, so the engine uses them as they are."""

from __future__ import annotations

import importlib.util

from hfcls.errors import HfclsError, did_you_mean
from hfcls.recipe.ranges import RANGES, in_interval, interval_text, is_number
from hfcls.recipe.schema import EMA_DEFAULTS, LOSS_TYPES

# Accelerate's trackers (accelerate.utils.LoggerType, less "all"), named here to check a recipe
# without importing Accelerate (and torch with it); tests/recipe/test_settings.py compares.
TRACKERS = ("aim", "tensorboard", "wandb", "trackio", "comet_ml", "mlflow", "clearml", "dvclive", "swanlab")


def ema_settings(ema: dict | None, where: str = "recipe") -> dict | None:
    """train.ema with its defaults filled in (EMA_DEFAULTS), each key checked."""
    if ema is None:
        return None
    if not isinstance(ema, dict):
        raise HfclsError(f"{where}: train.ema must be a mapping such as {{decay: 0.9998}}, got {ema!r}")
    unknown = set(ema) - set(EMA_DEFAULTS)
    if unknown:
        raise HfclsError(
            f"{where}: train.ema: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(EMA_DEFAULTS)}"
        )
    settings = {**EMA_DEFAULTS, **ema}
    for key in ("decay", "warmup_power", "every_n_steps"):
        kind, interval = int if key == "every_n_steps" else float, RANGES[f"train.ema.{key}"]
        if not is_number(settings[key], kind) or not in_interval(settings[key], interval):
            noun = "a whole number" if kind is int else "a number"
            raise HfclsError(
                f"{where}: train.ema.{key} must be {noun} {interval_text(interval)}, got {settings[key]!r}"
            )
    if not isinstance(settings["warmup"], bool):
        raise HfclsError(f"{where}: train.ema.warmup must be true or false, got {settings['warmup']!r}")
    return settings


def check_loss(loss: dict | None, where: str) -> None:
    """train.loss: a type of LOSS_TYPES with options it takes, each a number >= 0. Whether the type
    trains the data's problem type is known once the data is (hfcls.engine.losses)."""
    if loss is None:
        return
    kind = loss.get("type")
    if kind not in LOSS_TYPES:
        raise HfclsError(
            f"{where}: train.loss.type must be one of {', '.join(LOSS_TYPES)}, got {kind!r}"
            f"{did_you_mean(kind, LOSS_TYPES)}"
        )
    known = list(dict.fromkeys(option for options in LOSS_TYPES[kind].values() for option in options))
    for key, value in loss.items():
        if key == "type":
            continue
        if key not in known:
            raise HfclsError(
                f"{where}: train.loss: unknown option {key} for {kind}{did_you_mean(key, known)}; "
                f"its options: {', '.join(known) or 'none'}"
            )
        if not is_number(value, float) or value < 0:
            raise HfclsError(f"{where}: train.loss.{key} must be a number >= 0, got {value!r}")


def tracker_names(log_with: list | None, where: str) -> list:
    """train.log_with, each name one Accelerate knows; unset: TensorBoard when it is installed."""
    if log_with is None:
        return ["tensorboard"] if importlib.util.find_spec("tensorboard") is not None else []
    for name in log_with:
        if name not in TRACKERS:
            raise HfclsError(
                f"{where}: train.log_with: unknown tracker {name!r}{did_you_mean(name, TRACKERS)}; "
                f"Accelerate knows {', '.join(TRACKERS)}"
            )
    return list(log_with)
