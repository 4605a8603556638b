"""The settings validation finishes: the mappings and lists of train.ema, train.loss, train.log_with,
model.lora and train.distill, checked key by key and completed, so the engine uses them as they are."""

from __future__ import annotations

import importlib.util

from hfcls.errors import HfclsError, did_you_mean
from hfcls.recipe.ranges import RANGES, in_interval, interval_text, is_number
from hfcls.recipe.schema import DISTILL_DEFAULTS, EMA_DEFAULTS, LORA_DEFAULTS, LOSS_TYPES

# Accelerate's trackers (accelerate.utils.LoggerType, less "all"), named here to check a recipe
# without importing Accelerate (and torch with it); tests/recipe/test_settings.py compares.
TRACKERS = ("aim", "tensorboard", "wandb", "trackio", "comet_ml", "mlflow", "clearml", "dvclive", "swanlab")


def ema_settings(ema: dict | None, where: str = "recipe") -> dict | None:
    """train.ema with its defaults filled in (EMA_DEFAULTS), each key checked."""
    settings = filled_mapping("train.ema", ema, EMA_DEFAULTS, "{decay: 0.9998}", where)
    if settings is None:
        return None
    check_numbers("train.ema", settings, {"decay": float, "warmup_power": float, "every_n_steps": int}, where)
    check_flag("train.ema", settings, "warmup", where)
    return settings


def lora_settings(lora: dict | None, where: str = "recipe") -> dict | None:
    """model.lora with its defaults filled in (LORA_DEFAULTS), each key checked; target_modules stays
    None for the model family's default (hfcls.modeling.lora)."""
    settings = filled_mapping("model.lora", lora, LORA_DEFAULTS, "{r: 8, alpha: 16}", where)
    if settings is None:
        return None
    check_numbers("model.lora", settings, {"r": int, "alpha": float, "dropout": float}, where)
    targets = settings["target_modules"]
    if targets is not None and (
        not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets)
    ):
        raise HfclsError(
            f"{where}: model.lora.target_modules must be a list of module names such as [query, value] "
            f"(or unset for the model's default), got {targets!r}"
        )
    return settings


def distill_settings(distill: dict | None, where: str = "recipe") -> dict | None:
    """train.distill with its defaults filled in (DISTILL_DEFAULTS), each key checked: a teacher is named,
    and a temperature is given only for the soft targets it shapes."""
    settings = filled_mapping("train.distill", distill, DISTILL_DEFAULTS, "{teacher: work_dirs/big/best}", where)
    if settings is None:
        return None
    teacher = settings["teacher"]
    if not isinstance(teacher, str) or not teacher:
        raise HfclsError(
            f"{where}: train.distill.teacher must name the teacher model (a best/ folder, a checkpoint, "
            f"a published .safetensors file or a Hub id), got {teacher!r}"
        )
    check_numbers("train.distill", settings, {"alpha": float, "temperature": float}, where)
    check_flag("train.distill", settings, "hard", where)
    if settings["hard"] and "temperature" in distill:
        raise HfclsError(
            f"{where}: train.distill.temperature softens the teacher's soft targets, but hard: true "
            "distils the teacher's top class; drop one of the two"
        )
    return settings


def filled_mapping(key: str, value, defaults: dict, example: str, where: str) -> dict | None:
    """A mapping key's value with `defaults` filled in, after refusing a non-mapping or an unknown key."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise HfclsError(f"{where}: {key} must be a mapping such as {example}, got {value!r}")
    unknown = set(value) - set(defaults)
    if unknown:
        raise HfclsError(
            f"{where}: {key}: unknown key(s) {', '.join(sorted(unknown))}"
            f"{did_you_mean(sorted(unknown)[0], defaults)}; known: {', '.join(defaults)}"
        )
    return {**defaults, **value}


def check_numbers(key: str, settings: dict, kinds: dict, where: str) -> None:
    """Each of a mapping's numbers of its kind and in its range (RANGES["<key>.<name>"])."""
    for name, kind in kinds.items():
        interval = RANGES[f"{key}.{name}"]
        if not is_number(settings[name], kind) or not in_interval(settings[name], interval):
            noun = "a whole number" if kind is int else "a number"
            raise HfclsError(f"{where}: {key}.{name} must be {noun} {interval_text(interval)}, got {settings[name]!r}")


def check_flag(key: str, settings: dict, name: str, where: str) -> None:
    if not isinstance(settings[name], bool):
        raise HfclsError(f"{where}: {key}.{name} must be true or false, got {settings[name]!r}")


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
