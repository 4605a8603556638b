"""Where a run keeps what it writes, and what each file is called: the one place that knows.

    work_dir/
      recipe.yaml            the resolved recipe, exactly what ran
      log.txt, metrics.jsonl, tensorboard/
      hfcls.lock             held by the run training here (host, PID, start time; hfcls.engine.lock)
      checkpoints/epoch_E/   after epoch E; step_S/ after optimizer step S mid-epoch
        trainer_state.json     written last, with the size of every other file: a checkpoint is
                               intact when its folder has its final name and every file its size
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

from hfcls.errors import HfclsError

RECIPE_FILE = "recipe.yaml"
LOCK_FILE = "hfcls.lock"
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
EXPORT_RESULTS = (*EXPORTS, "publish", METRICS_FILE)  # what a finished run leaves besides its checkpoints
RUN_NAMES = {RECIPE_FILE, LOCK_FILE, CHECKPOINTS, *EXPORT_RESULTS, "log.txt", "tensorboard"}  # a run's own entries
# Only a completed save has its final name: epoch_3.tmp is being written, epoch_3.old being removed.
CHECKPOINT_NAME = re.compile(r"(epoch|step)_\d+")
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
    # The epoch's metrics.jsonl row (at an epoch's end): a row lost to a kill after the save is restored on resume.
    row: dict = field(default_factory=dict)
    # Every other file of the folder and its size in bytes: what "intact" means.
    files: dict = field(default_factory=dict)
    # torch's CPU threads (hfcls.engine.threads): a resumed run takes the same; 0 in older checkpoints.
    cpu_threads: int = 0


# What each trainer_state.json key may hold; a key not listed here is damage, not a newer hfcls.
STATE_TYPES = {"epoch": int, "step": int, "batch_in_epoch": int, "epoch_loss_sum": (int, float),
               "best_metric": (int, float, type(None)), "best_epoch": (int, type(None)), "bad_steps": int,
               "has_optimizer": bool, "loader": dict, "recipe": dict, "row": dict, "files": dict, "cpu_threads": int}


def checkpoint_name(state: TrainState) -> str:
    return f"step_{state.step}" if state.batch_in_epoch else f"epoch_{state.epoch}"


def read_state(folder: Path) -> TrainState | None:
    """The state of the intact checkpoint in `folder`; None where no save completed (a temporary or
    leftover name, no trainer_state.json). A damaged checkpoint raises HfclsError naming the damage."""
    folder = Path(folder)
    if not CHECKPOINT_NAME.fullmatch(folder.name) or not (folder / STATE_FILE).is_file():
        return None
    return checked_state(folder)


def checked_state(folder: Path) -> TrainState:
    """The folder's trainer_state.json, its keys and types checked, every file it lists there whole."""
    path = Path(folder) / STATE_FILE
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise HfclsError(f"checkpoint {folder} is damaged: {STATE_FILE} is not readable JSON ({error})") from None
    if not isinstance(raw, dict):
        raise HfclsError(f"checkpoint {folder} is damaged: {STATE_FILE} holds a {type(raw).__name__}, not a mapping")
    for key, value in raw.items():
        if key not in STATE_TYPES:
            raise HfclsError(f"checkpoint {folder} is damaged: {STATE_FILE} has an unknown key {key!r}")
        expected = STATE_TYPES[key]
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):
            raise HfclsError(f"checkpoint {folder} is damaged: {STATE_FILE} key {key!r} holds {value!r}")
    state = TrainState(**raw)
    check_files(Path(folder), state.files)
    return state


def check_files(folder: Path, files: dict) -> None:
    """Every file the save listed, at its size, and nothing it did not write (which nothing would check)."""
    # Checkpoints of older hfcls list no files: their weights at least must be there.
    for name, size in (files or {WEIGHTS_FILE: None}).items():
        file = folder / name
        if not file.is_file():
            raise HfclsError(f"checkpoint {folder} is damaged: {name} is missing")
        if size is not None and file.stat().st_size != size:
            raise HfclsError(f"checkpoint {folder} is damaged: {name} has {file.stat().st_size} bytes, "
                             f"{size} when it was saved")
    foreign = sorted({str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {*files, STATE_FILE})
    if files and foreign:
        raise HfclsError(f"checkpoint {folder} is damaged: it holds {foreign[0]}, which its save did not write "
                         "(hfcls loads nothing it did not write)")


def scan_checkpoints(work_dir: Path) -> tuple:
    """([(state, folder)] of the intact checkpoints, oldest first; [HfclsError] of the damaged ones)."""
    intact, damaged = [], []
    for folder in (Path(work_dir) / CHECKPOINTS).glob("*_*"):
        try:
            state = read_state(folder)
        except HfclsError as error:
            damaged.append(error)
            continue
        if state is not None:
            intact.append((state, folder))
    # At equal steps an epoch-end checkpoint is newer than a mid-epoch one.
    return sorted(intact, key=lambda item: (item[0].step, item[0].batch_in_epoch == 0)), damaged


def complete_checkpoints(work_dir: Path) -> list:
    """(state, folder) of every intact checkpoint, oldest first."""
    return scan_checkpoints(work_dir)[0]


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


def run_holding(path) -> Path | None:
    """The work dir whose own files `path` is, holds or sits among (a work dir itself, its checkpoints/,
    best/, anything deeper); None for a new name beside them (work_dir/best-hub) or a path outside any run."""
    here = Path(path).resolve()
    if (here / RECIPE_FILE).is_file() or (here / CHECKPOINTS).is_dir():
        return here
    for depth, parent in enumerate(here.parents):
        if (parent / RECIPE_FILE).is_file():
            return parent if depth > 0 or here.name in RUN_NAMES else None
    return None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
