"""Full-state checkpoints: save atomically, load into a run, choose the one to resume, prune.

A checkpoint is an Accelerate state folder (model, optimizer, scaler, every
RNG) plus what hfcls writes beside it by name: the EMA weights
(ema.safetensors), the LR schedule (scheduler.json), the model's config and
preprocessing, and last `trainer_state.json` (hfcls.artifacts.layout), which
lists every other file with its size. Folders are written under a `.tmp`
name, fsynced and renamed, and removed by renaming them to `.old` first, so a
process killed at any point leaves the earlier checkpoints usable and no
folder that looks complete but is not. Nothing in a checkpoint is unpickled
beyond `torch.load(weights_only=True)`: Accelerate loads its optimizer, scaler
and RNG files so, and a file that needs more is refused, not run.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from dataclasses import asdict
from pathlib import Path

from accelerate import Accelerator

from hfcls.artifacts.export import save_description
from hfcls.artifacts.layout import (CHECKPOINTS, EMA_FILE, EXPORT_RESULTS, METRICS_FILE, OPTIMIZER_FILES,
                                    SCHEDULER_FILE, STATE_FILE, WEIGHTS_FILE, TrainState, checked_state,
                                    scan_checkpoints)
from hfcls.artifacts.weights import read_safetensors
from hfcls.engine.dist import whole_state_dict
from hfcls.errors import HfclsError
from hfcls.files import publish_folder, storage_errors, temporary_folder, write_atomic
from hfcls.logs import read_jsonl

logger = logging.getLogger(__name__)

RNG_FILES = "random_states_*.pkl"
RESUME_HINT = ("the earlier checkpoints are intact; free some space (or make the work dir writable), "
               "then continue with --resume-from auto")


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


def save_checkpoint(run, state: TrainState, folder: Path, row: dict | None = None) -> None:
    """Write `folder` atomically: it appears complete and on the disk, or not at all.

    `row` is the epoch's metrics.jsonl row, kept in the state so that resume restores it.
    """
    accelerator = run.accelerator
    tmp = temporary_folder(folder)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    with storage_errors(f"checkpoint {folder}", folder.parent, RESUME_HINT,
                        cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True)):
        accelerator.save_state(str(tmp))
        whole = whole_state_dict(accelerator, run.model)  # FSDP: Accelerate wrote its own form of the weights
        # Every process writes its own RNG state into the folder: all must be done
        # before rank 0 renames it.
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            write_named_state(run, tmp, whole)
            save_optimizer = run.recipe.checkpoint.save_optimizer
            if not save_optimizer:
                for path in tmp.glob(OPTIMIZER_FILES):
                    path.unlink()
            # Mid-epoch, where the loader stands; at an epoch's end the next epoch starts afresh.
            loader = run.train_loader.state_dict() if state.batch_in_epoch else {}
            files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
            state = TrainState(**{**asdict(state), "has_optimizer": save_optimizer, "loader": loader,
                                  "row": row or {}, "files": files})
            (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=1))
            publish_folder(tmp, folder)
    accelerator.wait_for_everyone()


def write_named_state(run, folder: Path, whole: dict | None = None) -> None:
    """What hfcls keeps beside Accelerate's state, each in its own file; `whole`, the weights gathered
    from a sharded model, as the model.safetensors every reader of a checkpoint reads."""
    from safetensors.torch import save_file

    if whole is not None:
        save_file({key: value.contiguous() for key, value in whole.items()}, folder / WEIGHTS_FILE)
    (folder / SCHEDULER_FILE).write_text(json.dumps(run.scheduler.state_dict()))
    if run.ema is not None:
        save_file({key: value.detach().to("cpu", copy=True).contiguous()
                   for key, value in run.ema.state_dict().items()}, folder / EMA_FILE)
    save_description(run.accelerator.unwrap_model(run.model, keep_torch_compile=False), run.processor, folder)


def remove_folder(folder: Path) -> None:
    """Delete a checkpoint so that no moment leaves a half of it under its own name."""
    doomed = folder.with_name(folder.name + ".old")
    shutil.rmtree(doomed, ignore_errors=True)
    folder.rename(doomed)
    shutil.rmtree(doomed)


# ----------------------------------------------------------------------------- find


def resolve_resume(resume_from: str | None, work_dir: Path) -> Path | None:
    """The checkpoint folder `--resume-from` means; refuse to overwrite a run by accident."""
    if resume_from is None:
        check_fresh_work_dir(work_dir)
        return None
    if resume_from == "auto":
        intact, damaged = scan_checkpoints(work_dir)
        for error in damaged:
            logger.warning("--resume-from auto: skipping %s", error)
        if damaged and not intact:
            raise HfclsError(f"--resume-from auto: no complete checkpoint under {work_dir / CHECKPOINTS}, only "
                             f"{len(damaged)} damaged (first: {damaged[0]}); start again in a new --work-dir")
        if not intact:
            raise HfclsError(f"--resume-from auto: no complete checkpoint under {work_dir / CHECKPOINTS}; "
                             "start without --resume-from")
        return intact[-1][1]
    path = Path(resume_from)
    if not path.is_dir():
        raise HfclsError(f"--resume-from {resume_from}: no such checkpoint folder")
    if not (path / STATE_FILE).is_file():
        raise HfclsError(f"--resume-from {resume_from}: not a complete hfcls checkpoint (no {STATE_FILE}); "
                         "pass a checkpoints/epoch_N or step_N folder, or --resume-from auto")
    checked_state(path)
    return path


def check_fresh_work_dir(work_dir: Path) -> None:
    """A new run starts only where no earlier run left checkpoints or results."""
    intact, damaged = scan_checkpoints(work_dir)
    if intact:
        raise HfclsError(f"work dir {work_dir} already holds checkpoints (newest: {intact[-1][1].name}); pass "
                         "--resume-from auto (or --resume) to continue that run, or choose another --work-dir")
    left = [name for name in EXPORT_RESULTS if (Path(work_dir) / name).exists()]
    if damaged or left:
        what = ", ".join(left + ([f"{len(damaged)} damaged checkpoint(s)"] if damaged else []))
        raise HfclsError(f"work dir {work_dir} holds the results of an earlier run ({what}) but no checkpoint "
                         "to continue it from; nothing was changed: choose another --work-dir, or move those away")


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
    state = checked_state(folder)
    check_compatible(state.recipe, fingerprint, folder)
    scheduler_file = folder / SCHEDULER_FILE
    if not scheduler_file.is_file():
        raise HfclsError(f"checkpoint {folder} has no {SCHEDULER_FILE} (written by an older hfcls, which kept it in a "
                         "pickle); resume cannot restore the LR schedule: start the run again, or --load-from it")
    check_rng_files(folder)
    try:
        if state.has_optimizer:
            run.accelerator.load_state(str(folder))
        else:
            logger.warning("checkpoint %s holds no optimizer state (checkpoint.save_optimizer: false); "
                           "the optimizer starts afresh", folder)
            load_state_without_optimizer(run.accelerator, folder)
    except pickle.UnpicklingError as error:  # torch.load(weights_only=True) met something that is not data
        raise unsafe_pickle(folder, error) from None
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


def check_rng_files(folder: Path) -> None:
    """Load each process's RNG file as Accelerate does (weights_only), before Accelerate does.

    Accelerate loads them inside a `try` that logs "Could not load random states"
    at INFO level and goes on: a crafted or damaged file would pass unseen, and the
    resumed run would draw other random numbers.
    """
    from accelerate.utils import load

    for path in sorted(folder.glob(RNG_FILES)):
        try:
            load(path, map_location="cpu")
        except pickle.UnpicklingError as error:
            raise unsafe_pickle(folder, error, path.name) from None
        except Exception as error:  # a damaged zip or pickle: torch has no one error type for it
            raise HfclsError(f"checkpoint {folder}: cannot read {path.name} ({str(error).splitlines()[0]}); "
                             "resume from an earlier checkpoint") from None


def unsafe_pickle(folder: Path, error, name: str | None = None) -> HfclsError:
    # torch's message names the global the file asked for (e.g. "Unsupported global: GLOBAL posix.system").
    detail = next((line.strip() for line in str(error).splitlines() if "global" in line.lower()),
                  str(error).splitlines()[0])
    return HfclsError(f"checkpoint {folder}: {name or 'a state file'} holds more than tensors and plain data "
                      f"({detail}); hfcls loads checkpoints with weights_only=True and runs nothing from them: "
                      "resume only from checkpoints you made")


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
    checkpoints = Path(work_dir) / CHECKPOINTS
    for leftover in [*checkpoints.glob("*.tmp"), *checkpoints.glob("*.old")]:
        shutil.rmtree(leftover, ignore_errors=True)
    if max_keep is None:
        return
    found = scan_checkpoints(work_dir)[0]
    for state, folder in found[:-max_keep]:
        if best_epoch is not None and folder.name == f"epoch_{best_epoch}":
            continue
        logger.info("removing old checkpoint %s (checkpoint.max_keep=%d)", folder, max_keep)
        remove_folder(folder)


# ----------------------------------------------------------------------------- metrics.jsonl on resume


def restore_rows(work_dir: Path, state: TrainState) -> None:
    """Make metrics.jsonl hold exactly one row per epoch up to the checkpoint's.

    Rows of epochs after it (their epochs are trained again) and a line torn by a
    kill go; the checkpoint's own row, lost when a kill came between the save and
    the row, comes back.
    """
    path = Path(work_dir) / METRICS_FILE
    rows = [row for row in (read_jsonl(path) if path.is_file() else []) if row.get("epoch", 0) <= state.epoch]
    if state.row and not any(row.get("epoch") == state.epoch for row in rows):
        rows.append(state.row)
        logger.info("restored the metrics.jsonl row of epoch %d from its checkpoint", state.epoch)
    content = "".join(json.dumps(row) + "\n" for row in rows)
    if not path.is_file() or path.read_text() != content:
        write_atomic(path, content)
