"""Where a run keeps what it writes, and what each file is called: the one place that knows.

    work_dir/
      recipe.yaml            the resolved recipe, exactly what ran
      log.txt, metrics.jsonl, tensorboard/
      checkpoints/epoch_E/   after epoch E; step_S/ after optimizer step S mid-epoch
        trainer_state.json     written last: a folder without it is incomplete
        config.json            the model's own description (architecture, class names) ...
        preprocessor_config.json   ... and its eval preprocessing: the folder is self-describing
        model.safetensors      the raw weights (Accelerate's state, with optimizer, RNG, scaler)
        ema.safetensors        the moving average of the weights, when train.ema is on
        scheduler.json         the LR schedule's position
      latest/, best/         Hugging Face folders of the evaluated weights (the EMA when there is one)
      publish/<name>-<sha256[:8]>.safetensors (and a Hugging Face folder of the same name)
    anywhere: <name>.onnx from hfcls-export, metadata under the same key as a published file's

A published file's name carries the first 8 hex digits of its own sha256, and
its metadata (one key, `hfcls`) holds the model config, class names and preprocessing.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

RECIPE_FILE = "recipe.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.json"
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
WEIGHTS_FILE = "model.safetensors"  # in Hugging Face folders and Accelerate checkpoints alike
EMA_FILE = "ema.safetensors"
SCHEDULER_FILE = "scheduler.json"
OPTIMIZER_FILES = "optimizer*.bin"
EXPORTS = ("latest", "best")
ONNX_SUFFIX = ".onnx"  # hfcls-export's graphs, their metadata under METADATA_KEY

HASH_CHARS = 8
HASHED_NAME = re.compile(r"-([0-9a-f]{8})\.safetensors$")
METADATA_KEY = "hfcls"  # one key: safetensors writes several in random order, changing the hash


@dataclass
class TrainState:
    """What the loop needs besides tensors to continue where it stopped (trainer_state.json)."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed (also the tracker step)
    batch_in_epoch: int = 0  # loader batches of epoch `epoch + 1` already trained on
    epoch_loss_sum: float = 0.0  # running loss of those batches, for the epoch's row
    best_metric: float | None = None
    best_epoch: int | None = None
    bad_steps: int = 0  # non-finite losses skipped so far
    has_optimizer: bool = True
    loader: dict = field(default_factory=dict)  # the train loader's place in its epoch (its state_dict)
    # The settings a resumed run must share (hfcls.engine.checkpoints.check_compatible).
    recipe: dict = field(default_factory=dict)


def checkpoint_name(state: TrainState) -> str:
    return f"step_{state.step}" if state.batch_in_epoch else f"epoch_{state.epoch}"


def read_state(folder: Path) -> TrainState | None:
    """The folder's state, or None when it is not a complete checkpoint."""
    folder = Path(folder)
    path = folder / STATE_FILE
    if folder.name.endswith(".tmp") or not path.is_file():
        return None
    return TrainState(**json.loads(path.read_text()))


def complete_checkpoints(work_dir: Path) -> list:
    """(state, folder) of every complete checkpoint, oldest first."""
    found = []
    for folder in (Path(work_dir) / CHECKPOINTS).glob("*_*"):
        state = read_state(folder)
        if state is not None:
            found.append((state, folder))
    # At equal steps an epoch-end checkpoint is newer than a mid-epoch one.
    return sorted(found, key=lambda item: (item[0].step, item[0].batch_in_epoch == 0))


def find_latest_checkpoint(work_dir: Path) -> Path | None:
    found = complete_checkpoints(work_dir)
    return found[-1][1] if found else None


def work_dir_of(path) -> Path | None:
    """The run an artifact belongs to: the nearest of its folder, that folder's parent
    and grandparent holding a recipe.yaml (checkpoints/epoch_N, best/, publish/<name>-<hash>...)."""
    path = Path(path).resolve()
    folder = path if path.is_dir() else path.parent
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / RECIPE_FILE).is_file():
            return candidate
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
