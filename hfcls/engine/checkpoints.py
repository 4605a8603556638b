"""Full-state checkpoints: save atomically, load into a run, choose the one to resume, prune.

A checkpoint is an Accelerate state folder (model, optimizer, scaler, every
RNG) plus what hfcls writes beside it by name: the EMA weights
(ema.safetensors), the LR schedule (scheduler.json), the model's config and
preprocessing, and last `trainer_state.json` (hfcls.artifacts.layout). Nothing
in it needs more than `torch.load(weights_only=True)`. Folders are written
under a `.tmp` name and renamed, so a process killed mid-save leaves the
earlier checkpoints usable.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

from accelerate import Accelerator

from hfcls.artifacts.export import save_description
from hfcls.artifacts.layout import (CHECKPOINTS, EMA_FILE, OPTIMIZER_FILES, SCHEDULER_FILE, STATE_FILE, TrainState,
                                    complete_checkpoints, find_latest_checkpoint, read_state)
from hfcls.artifacts.weights import read_safetensors
from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)


def recipe_fingerprint(recipe, num_classes: int, num_processes: int = 1, steps_per_epoch: int | None = None) -> dict:
    """What a resumed run must share with the checkpoint, by the recipe key a user would change."""
    return {
        "model": recipe.model.config or recipe.model.pretrained,
        "num_classes": num_classes,
        "optimizer": recipe.optim.type,
        "epochs": recipe.train.epochs,
        # What the restored optimizer and LR schedule were built from: they would silently keep the
        # checkpoint's values, or step through the schedule at another pace.
        **{f"optim.{key}": value for key, value in asdict(recipe.optim).items() if key != "type"},
        **{f"schedule.{key}": value for key, value in asdict(recipe.schedule).items()},
        "train.auto_scale_lr": recipe.train.auto_scale_lr,
        "data.batch_size": recipe.data.batch_size,
        "train.gradient_accumulation_steps": recipe.train.gradient_accumulation_steps,
        "number of processes": num_processes,
        "steps per epoch": steps_per_epoch,
    }


# ----------------------------------------------------------------------------- save


def save_checkpoint(run, state: TrainState, folder: Path) -> None:
    """Write `folder` atomically: it appears complete, or not at all."""
    accelerator = run.accelerator
    tmp = folder.with_name(folder.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    # Every process writes its own RNG state into the folder: all must be done
    # before rank 0 renames it.
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_named_state(run, tmp)
        save_optimizer = run.recipe.checkpoint.save_optimizer
        if not save_optimizer:
            for path in tmp.glob(OPTIMIZER_FILES):
                path.unlink()
        # Mid-epoch, where the loader stands; at an epoch's end the next epoch starts afresh.
        loader = run.train_loader.state_dict() if state.batch_in_epoch else {}
        state = TrainState(**{**asdict(state), "has_optimizer": save_optimizer, "loader": loader})
        (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))
        replace_folder(tmp, folder)
    accelerator.wait_for_everyone()


def write_named_state(run, folder: Path) -> None:
    """What hfcls keeps beside Accelerate's state, each in its own file."""
    from safetensors.torch import save_file

    (folder / SCHEDULER_FILE).write_text(json.dumps(run.scheduler.state_dict()))
    if run.ema is not None:
        save_file({key: value.detach().to("cpu", copy=True).contiguous()
                   for key, value in run.ema.state_dict().items()}, folder / EMA_FILE)
    save_description(run.accelerator.unwrap_model(run.model, keep_torch_compile=False), run.processor, folder)


def replace_folder(tmp: Path, folder: Path) -> None:
    """Rename the finished temporary folder into place (replacing an older one)."""
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)


# ----------------------------------------------------------------------------- find


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
            raise HfclsError(f"--resume-from auto: no complete checkpoint under {work_dir / CHECKPOINTS}; "
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
    """Refuse a checkpoint from another recipe, or one whose schedule this run would step through
    differently; allow (with a warning) a new epoch count, for which the schedule is recomputed."""
    for key in ("model", "num_classes", "optimizer"):
        if key in saved and saved[key] != current[key]:
            raise HfclsError(f"checkpoint {folder} was trained with another {key}: {saved[key]!r} there, "
                             f"{current[key]!r} in this recipe; resume with the recipe that made it "
                             "(its work dir holds recipe.yaml), or use --load-from to fine-tune from its weights")
    # Checkpoints of older hfcls recorded fewer keys: those they lack are not compared.
    changed = [key for key in current if key not in ("model", "num_classes", "optimizer", "epochs")
               and key in saved and saved[key] != current[key]]
    if changed:
        key = changed[0]
        why = " (the training data changed size?)" if key == "steps per epoch" else ""
        raise HfclsError(f"checkpoint {folder} was trained with {key} {saved[key]!r}, this run has "
                         f"{current[key]!r}{why}: its optimizer and LR schedule would not continue as they were; "
                         f"resume with the {key} it had, or start a new run with --load-from {folder}")
    if saved.get("epochs") not in (None, current["epochs"]):
        logger.warning("train.epochs changed from %s to %s since checkpoint %s: the LR schedule is recomputed "
                       "for %s epochs", saved["epochs"], current["epochs"], folder, current["epochs"])


def load_checkpoint(run, folder: Path, fingerprint: dict) -> TrainState:
    """Restore the run's tensors, schedule, EMA and loader position; return its TrainState."""
    state = read_state(folder)
    check_compatible(state.recipe, fingerprint, folder)
    scheduler_file = folder / SCHEDULER_FILE
    if not scheduler_file.is_file():
        raise HfclsError(f"checkpoint {folder} has no {SCHEDULER_FILE} (written by an older hfcls, which kept it in a "
                         "pickle); resume cannot restore the LR schedule: start the run again, or --load-from it")
    if state.has_optimizer:
        run.accelerator.load_state(str(folder))
    else:
        logger.warning("checkpoint %s holds no optimizer state (checkpoint.save_optimizer: false); "
                       "the optimizer starts afresh", folder)
        load_state_without_optimizer(run.accelerator, folder)
    run.scheduler.load_state_dict(json.loads(scheduler_file.read_text()))
    if run.ema is not None:
        if not (folder / EMA_FILE).is_file():
            raise HfclsError(f"checkpoint {folder} holds no EMA weights ({EMA_FILE}) but the recipe sets train.ema; "
                             "resume with the recipe that made it")
        run.ema.load_state_dict(read_safetensors(folder / EMA_FILE))
    if state.batch_in_epoch:  # checkpoints of older hfcls recorded only the batch count
        run.train_loader.load_state_dict(state.loader or {"batches": state.batch_in_epoch})
    state.recipe = fingerprint
    return state


def load_state_without_optimizer(accelerator: Accelerator, folder: Path) -> None:
    # Accelerate loads every prepared optimizer and has no switch to skip them, so they
    # are hidden for this one call: the one private attribute hfcls touches here
    # (tests/test_private_apis.py fails loudly if Accelerate renames it).
    optimizers, accelerator._optimizers = accelerator._optimizers, []
    try:
        accelerator.load_state(str(folder))
    finally:
        accelerator._optimizers = optimizers


# ----------------------------------------------------------------------------- prune


def prune_checkpoints(work_dir: Path, max_keep: int | None, best_epoch: int | None) -> None:
    """Keep the newest `max_keep` checkpoints and the best epoch's; drop leftover temporary folders."""
    for tmp in (Path(work_dir) / CHECKPOINTS).glob("*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
    if max_keep is None:
        return
    found = complete_checkpoints(work_dir)
    for state, folder in found[:-max_keep]:
        if best_epoch is not None and folder.name == f"epoch_{best_epoch}":
            continue
        logger.info("removing old checkpoint %s (checkpoint.max_keep=%d)", folder, max_keep)
        shutil.rmtree(folder)
