"""`train.log_with`: Accelerate's experiment trackers, checked before the run starts."""

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
