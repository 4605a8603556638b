"""Continue a run from its checkpoint: refuse one made by another recipe, then restore every tensor,
the LR schedule, the EMA and the loader's place.

Nothing in a checkpoint is unpickled beyond `torch.load(weights_only=True)`:
Accelerate loads its optimizer, scaler and RNG files so, and a file that needs
more is refused, not run.
"""

from __future__ import annotations

import json
import logging
import pickle
from dataclasses import asdict
from pathlib import Path

from hfcls.artifacts.checkpoint import EMA_FILE, RNG_FILES, SCHEDULER_FILE, TrainState, checked_state
from hfcls.artifacts.weights import read_safetensors
from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)

IDENTITY = ("model", "num_classes", "optimizer")  # another value is another recipe, not a changed setting


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
        # The modules a LoRA checkpoint's weights belong to, and the loss the rest of the run trains with.
        "model.lora": recipe.model.lora,
        "train.distill": recipe.train.distill,
        "data.batch_size": recipe.data.batch_size,
        "data.progressive_resizing": recipe.data.progressive_resizing,  # which side each epoch trains at
        "train.gradient_accumulation_steps": recipe.train.gradient_accumulation_steps,
        "number of processes": num_processes,
        "steps per epoch": steps_per_epoch,
    }


def check_compatible(saved: dict, current: dict, folder: Path) -> None:
    """Refuse a checkpoint from another recipe, or one whose schedule this run would step through
    differently; allow (with a warning) a new epoch count, for which the schedule is recomputed."""
    for key in IDENTITY:
        if saved.get(key) != current[key]:
            raise HfclsError(
                f"checkpoint {folder} was trained with another {key}: {saved.get(key)!r} there, "
                f"{current[key]!r} in this recipe; resume with the recipe that made it "
                "(its work dir holds recipe.yaml), or use --load-from to fine-tune from its weights"
            )
    changed = [key for key in current if key not in (*IDENTITY, "epochs") and saved.get(key) != current[key]]
    if changed:
        key = changed[0]
        why = " (the training data changed size?)" if key == "steps per epoch" else ""
        raise HfclsError(
            f"checkpoint {folder} was trained with {key} {saved.get(key)!r}, this run has "
            f"{current[key]!r}{why}: its optimizer and LR schedule would not continue as they were; "
            f"resume with the {key} it had, or start a new run with --load-from {folder}"
        )
    if saved.get("epochs") != current["epochs"]:
        logger.warning(
            "train.epochs changed from %s to %s since checkpoint %s: the LR schedule is recomputed for %s epochs",
            saved.get("epochs"),
            current["epochs"],
            folder,
            current["epochs"],
        )


def restore(folder: Path, fingerprint: dict, accelerator, scheduler, ema, loader) -> TrainState:
    """Load the checkpoint into the prepared objects of a run of the recipe `fingerprint` describes: the
    Accelerate state (model, optimizer, scaler, RNG), the LR `scheduler`, the `ema` (None without one)
    and the train `loader`'s place in its epoch; return the state to train on from."""
    state = checked_state(folder)
    check_compatible(state.recipe, fingerprint, folder)
    check_rng_files(folder)
    try:
        if state.has_optimizer:
            accelerator.load_state(str(folder))
        else:
            logger.warning(
                "checkpoint %s holds no optimizer state (checkpoint.save_optimizer: false); "
                "the optimizer starts afresh",
                folder,
            )
            load_state_without_optimizer(accelerator, folder)
    except pickle.UnpicklingError as error:  # torch.load(weights_only=True) met something that is not data
        raise unsafe_pickle(folder, error) from None
    scheduler.load_state_dict(json.loads((folder / SCHEDULER_FILE).read_text()))
    if ema is not None:
        if not (folder / EMA_FILE).is_file():
            raise HfclsError(
                f"checkpoint {folder} holds no EMA weights ({EMA_FILE}) but the recipe sets train.ema; "
                "resume with the recipe that made it"
            )
        ema.load_state_dict(read_safetensors(folder / EMA_FILE))
    if state.batch_in_epoch:
        loader.load_state_dict(state.loader)
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
            raise HfclsError(
                f"checkpoint {folder}: cannot read {path.name} ({str(error).splitlines()[0]}); "
                "resume from an earlier checkpoint"
            ) from None


def unsafe_pickle(folder: Path, error, name: str | None = None) -> HfclsError:
    # torch's message names the global the file asked for (e.g. "Unsupported global: GLOBAL posix.system").
    detail = next(
        (line.strip() for line in str(error).splitlines() if "global" in line.lower()), str(error).splitlines()[0]
    )
    return HfclsError(
        f"checkpoint {folder}: {name or 'a state file'} holds more than tensors and plain data "
        f"({detail}); hfcls loads checkpoints with weights_only=True and runs nothing from them: "
        "resume only from checkpoints you made"
    )


def load_state_without_optimizer(accelerator, folder: Path) -> None:
    # Accelerate loads every prepared optimizer and has no switch to skip them, so they
    # are hidden for this one call: the one private attribute hfcls touches here
    # (tests/test_private_apis.py fails loudly if Accelerate renames it).
    optimizers, accelerator._optimizers = accelerator._optimizers, []
    try:
        accelerator.load_state(str(folder))
    finally:
        accelerator._optimizers = optimizers
