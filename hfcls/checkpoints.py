"""Full-state checkpoints: save atomically, find the newest complete one, load, prune.

A checkpoint is an Accelerate state folder (model, optimizer, scheduler, scaler,
EMA, every RNG) plus `trainer_state.json`, which is written last: a folder
without it is incomplete. Folders are written under a `.tmp` name and renamed,
so a process killed mid-save leaves the earlier checkpoints usable.

Names: `epoch_E` after epoch E, `step_S` after optimizer step S in the middle of
an epoch. Order is by the global step the state records.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from accelerate import Accelerator

from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILES = "optimizer*.bin"


@dataclass
class TrainState:
    """What the loop needs besides tensors to continue where it stopped."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed (also the tracker step)
    batch_in_epoch: int = 0  # loader batches of epoch `epoch + 1` already trained on
    epoch_loss_sum: float = 0.0  # running loss of those batches, for the epoch's row
    best_metric: float | None = None
    best_epoch: int | None = None
    bad_steps: int = 0  # non-finite losses skipped so far
    has_optimizer: bool = True
    # The settings a resumed run must share (see `check_compatible`).
    recipe: dict = field(default_factory=dict)


def recipe_fingerprint(recipe, num_classes: int) -> dict:
    return {
        "model": recipe.model.config or recipe.model.pretrained,
        "num_classes": num_classes,
        "optimizer": recipe.optim.type,
        "epochs": recipe.train.epochs,
    }


def checkpoint_name(state: TrainState) -> str:
    return f"step_{state.step}" if state.batch_in_epoch else f"epoch_{state.epoch}"


# ----------------------------------------------------------------------------- save


def save_checkpoint(accelerator: Accelerator, state: TrainState, folder: Path, save_optimizer=True) -> None:
    """Write `folder` atomically: it appears complete, or not at all."""
    tmp = folder.with_name(folder.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    # Every process writes its own RNG state into the folder: all must be done
    # before rank 0 renames it.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if not save_optimizer:
            for path in tmp.glob(OPTIMIZER_FILES):
                path.unlink()
        state = TrainState(**{**asdict(state), "has_optimizer": save_optimizer})
        (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))
        publish(tmp, folder)
    accelerator.wait_for_everyone()


def publish(tmp: Path, folder: Path) -> None:
    """Rename the finished temporary folder into place (replacing an older one)."""
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


# ----------------------------------------------------------------------------- find


def read_state(folder: Path) -> TrainState | None:
    """The folder's state, or None when it is not a complete checkpoint."""
    path = Path(folder) / STATE_FILE
    if folder.name.endswith(".tmp") or not path.is_file():
        return None
    return TrainState(**json.loads(path.read_text()))


def complete_checkpoints(work_dir: Path) -> list:
    """(state, folder) of every complete checkpoint, oldest first."""
    found = []
    for folder in (Path(work_dir) / "checkpoints").glob("*_*"):
        state = read_state(folder)
        if state is not None:
            found.append((state, folder))
    # At equal steps an epoch-end checkpoint is newer than a mid-epoch one.
    return sorted(found, key=lambda item: (item[0].step, item[0].batch_in_epoch == 0))


def find_latest_checkpoint(work_dir: Path) -> Path | None:
    found = complete_checkpoints(work_dir)
    return found[-1][1] if found else None


def resolve_resume(resume_from: str | None, work_dir: Path) -> Path | None:
    """The checkpoint folder `--resume-from` means; refuse to overwrite a run by accident."""
    if resume_from is None:
        latest = find_latest_checkpoint(work_dir)
        if latest is not None:
            raise HfclsError(f"work dir {work_dir} already holds checkpoints (newest: {latest.name}); pass "
                             "--resume-from auto (or --resume) to continue that run, or choose another --work-dir")
        return None
    if resume_from == "auto":
        latest = find_latest_checkpoint(work_dir)
        if latest is None:
            raise HfclsError(f"--resume-from auto: no complete checkpoint under {work_dir / 'checkpoints'}; "
                             "start without --resume-from")
        return latest
    path = Path(resume_from)
    if not path.is_dir():
        raise HfclsError(f"--resume-from {resume_from}: no such checkpoint folder")
    if read_state(path) is None:
        raise HfclsError(f"--resume-from {resume_from}: not a complete hfcls checkpoint (no {STATE_FILE}); "
                         "pass a checkpoints/epoch_N or step_N folder, or --resume-from auto")
    return path


# ----------------------------------------------------------------------------- load


def check_compatible(saved: dict, current: dict, folder: Path) -> None:
    """Refuse a checkpoint from another recipe; allow (with a warning) a new epoch count."""
    for key in ("model", "num_classes", "optimizer"):
        if key in saved and saved[key] != current[key]:
            raise HfclsError(f"checkpoint {folder} was trained with another {key}: {saved[key]!r} there, "
                             f"{current[key]!r} in this recipe; resume with the recipe that made it "
                             "(its work dir holds recipe.yaml), or use --load-from to fine-tune from its weights")
    if saved.get("epochs") not in (None, current["epochs"]):
        logger.warning("train.epochs changed from %s to %s since checkpoint %s: the LR schedule is recomputed "
                       "for %s epochs", saved["epochs"], current["epochs"], folder, current["epochs"])


def load_checkpoint(accelerator: Accelerator, folder: Path, fingerprint: dict) -> TrainState:
    state = read_state(folder)
    check_compatible(state.recipe, fingerprint, folder)
    if state.has_optimizer:
        accelerator.load_state(str(folder))
    else:
        logger.warning("checkpoint %s holds no optimizer state (checkpoint.save_optimizer: false); "
                       "the optimizer starts afresh", folder)
        _load_state_without_optimizer(accelerator, folder)
    state.recipe = fingerprint
    return state


def _load_state_without_optimizer(accelerator: Accelerator, folder: Path) -> None:
    # Accelerate loads every prepared optimizer and has no switch to skip them;
    # hide them for this one call.
    optimizers, accelerator._optimizers = accelerator._optimizers, []
    try:
        accelerator.load_state(str(folder))
    finally:
        accelerator._optimizers = optimizers


# ----------------------------------------------------------------------------- prune


def prune_checkpoints(work_dir: Path, max_keep: int | None, best_epoch: int | None) -> None:
    """Keep the newest `max_keep` checkpoints and the best epoch's; drop leftover temporary folders."""
    for tmp in (Path(work_dir) / "checkpoints").glob("*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
    if max_keep is None:
        return
    found = complete_checkpoints(work_dir)
    for state, folder in found[:-max_keep]:
        if best_epoch is not None and folder.name == f"epoch_{best_epoch}":
            continue
        logger.info("removing old checkpoint %s (checkpoint.max_keep=%d)", folder, max_keep)
        shutil.rmtree(folder)
