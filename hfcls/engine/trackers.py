"""`train.log_with`: Accelerate's experiment trackers, installed where the run starts, and what they are told.

The recipe names them (checked and completed with it, hfcls.recipe.settings); whether each is
installed is a property of the machine that trains, so it is asked here, as Accelerate asks it.
"""

from __future__ import annotations

import accelerate.utils

from hfcls.errors import HfclsError
from hfcls.extras import install_hint

EXTRA_TRACKERS = {"tensorboard"}  # trackers an extra of hfcls installs (hfcls.extras), under the same name


def installed_trackers(log_with: list) -> list:
    """train.log_with, each tracker installed on this machine."""
    for name in log_with:
        if not tracker_installed(name):
            install = install_hint(name) if name in EXTRA_TRACKERS else f"pip install {name}"
            raise HfclsError(f"train.log_with: {name} is not installed; {install}, or leave it out of train.log_with")
    return log_with


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
