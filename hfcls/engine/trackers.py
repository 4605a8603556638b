"""`train.log_with`: Accelerate's experiment trackers, checked before the run starts, and what they are told."""

from __future__ import annotations

import accelerate.utils
from accelerate.utils import LoggerType

from hfcls.errors import HfclsError, did_you_mean


def trackers(log_with: list | None) -> list:
    """train.log_with, checked; unset: TensorBoard when it is installed."""
    if log_with is None:
        return ["tensorboard"] if tracker_installed("tensorboard") else []
    known = [str(t.value) for t in LoggerType if t != LoggerType.ALL]
    for name in log_with:
        if name not in known:
            raise HfclsError(f"train.log_with: unknown tracker {name!r}{did_you_mean(name, known)}; "
                             f"Accelerate knows {', '.join(known)}")
        if not tracker_installed(name):
            raise HfclsError(f"train.log_with: {name} is not installed; pip install {name}, "
                             "or leave it out of train.log_with")
    return list(log_with)


def tracker_installed(name: str) -> bool:
    return getattr(accelerate.utils, f"is_{name}_available")()


def tracker_config(recipe) -> dict:
    """The recipe as trackers take hyperparameters: one flat level of dotted keys, each value a
    bool, int, float or str (TensorBoard's hparams refuse lists and None)."""
    flat = {}

    def walk(value, key):
        if isinstance(value, dict) and value:
            for sub, item in value.items():
                walk(item, f"{key}.{sub}" if key else str(sub))
        elif isinstance(value, (bool, int, float, str)):
            flat[key] = value
        else:
            flat[key] = str(value)

    walk(recipe.to_dict(), "")
    return flat
