"""A training checkpoint: one folder, written whole or not at all, read back only when whole.

    checkpoints/epoch_E/     after epoch E; step_S/ after optimizer step S mid-epoch
      hfcls_state.json       written last, with the size of every other file: a checkpoint is
                             intact when its folder has its final name and every file its size
      config.json            the model's own description (architecture, class names) ...
      preprocessor_config.json   ... and its eval preprocessing: the folder is self-describing
      model.safetensors      the raw weights (Accelerate's state, with optimizer, RNG, scaler)
      ema.safetensors        the moving average of the weights, when train.ema is on
      adapter_config.json    model.lora's adapters (peft's LoraConfig): the weights files then hold the
                             LoRA model, frozen base, adapters and head, under peft's names, which the
                             reader (hfcls.artifacts.weights) merges into plain weights
      scheduler.json         the LR schedule's position

The folder is written under a `.tmp` name, fsynced and renamed, and removed by
renaming it to `.old` first, so a process killed at any point leaves the earlier
checkpoints usable and no folder that looks complete but is not. Which
checkpoints a work dir holds is hfcls.artifacts.run_dir's question; continuing a
run from one, hfcls.artifacts.resume's.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from hfcls.artifacts.export import WEIGHTS_FILE, save_description
from hfcls.errors import HfclsError
from hfcls.files import publish_folder, storage_errors, temporary_folder

# hfcls's own name: trainer_state.json, which earlier versions wrote, is transformers' Trainer's file,
# of another schema, and Trainer tools misread ours (LEGACY_STATE_FILE: refused with the rename that fixes it).
STATE_FILE = "hfcls_state.json"
LEGACY_STATE_FILE = "trainer_state.json"
EMA_FILE = "ema.safetensors"
SCHEDULER_FILE = "scheduler.json"
OPTIMIZER_FILES = "optimizer*.bin"
RNG_FILES = "random_states_*.pkl"
# Only a completed save has its final name: epoch_3.tmp is being written, epoch_3.old being removed.
CHECKPOINT_NAME = re.compile(r"(epoch|step)_\d+")
RESUME_HINT = (
    "the earlier checkpoints are intact; free some space (or make the work dir writable), "
    "then continue with --resume-from auto"
)


@dataclass
class TrainState:
    """What the loop needs besides tensors to continue where it stopped (hfcls_state.json)."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed (also the tracker step)
    batch_in_epoch: int = 0  # loader batches of epoch `epoch + 1` already trained on
    epoch_loss_sum: float = 0.0  # running loss of those batches, for the epoch's row
    best_metric: float | None = None
    best_epoch: int | None = None
    bad_steps: int = 0  # non-finite losses skipped so far
    has_optimizer: bool = True
    loader: dict = field(default_factory=dict)  # the train loader's place in its epoch (its state_dict)
    # The settings a resumed run must share (hfcls.artifacts.resume.check_compatible).
    recipe: dict = field(default_factory=dict)
    # The epoch's metrics.jsonl row (at an epoch's end): a row lost to a kill after the save is restored on resume.
    row: dict = field(default_factory=dict)
    # Every other file of the folder and its size in bytes: what "intact" means.
    files: dict = field(default_factory=dict)
    # torch's CPU threads (hfcls.engine.threads): a resumed run takes the same; 0 until a new run chooses.
    cpu_threads: int = 0


# What each hfcls_state.json key may hold; a key not listed here is damage, not a newer hfcls.
STATE_TYPES = {
    "epoch": int,
    "step": int,
    "batch_in_epoch": int,
    "epoch_loss_sum": (int, float),
    "best_metric": (int, float, type(None)),
    "best_epoch": (int, type(None)),
    "bad_steps": int,
    "has_optimizer": bool,
    "loader": dict,
    "recipe": dict,
    "row": dict,
    "files": dict,
    "cpu_threads": int,
}


def checkpoint_name(state: TrainState) -> str:
    return f"step_{state.step}" if state.batch_in_epoch else f"epoch_{state.epoch}"


# ----------------------------------------------------------------------------- read


def read_state(folder: Path) -> TrainState | None:
    """The state of the intact checkpoint in `folder`; None where no save completed (a temporary or
    leftover name, no hfcls_state.json). A damaged checkpoint raises HfclsError naming the damage."""
    folder = Path(folder)
    if not CHECKPOINT_NAME.fullmatch(folder.name):
        return None
    check_not_legacy(folder)
    if not (folder / STATE_FILE).is_file():
        return None
    return checked_state(folder)


def check_not_legacy(folder: Path) -> None:
    """Refuse a checkpoint of an earlier hfcls (its state in trainer_state.json), naming the rename that
    makes it readable. A Trainer's own trainer_state.json (other keys) is no concern of hfcls's."""
    legacy = Path(folder) / LEGACY_STATE_FILE
    if (Path(folder) / STATE_FILE).exists() or not legacy.is_file():
        return
    try:
        keys = set(json.loads(legacy.read_text()))
    except (OSError, UnicodeDecodeError, ValueError, TypeError):
        return
    if keys and keys <= set(STATE_TYPES):
        raise HfclsError(
            f"checkpoint {folder} was written by an earlier hfcls, its state in {LEGACY_STATE_FILE} (the name "
            f"of transformers' Trainer's file); rename it to {STATE_FILE}: mv {legacy} {Path(folder) / STATE_FILE}"
        )


def checked_state(folder: Path) -> TrainState:
    """The folder's hfcls_state.json, its keys and types checked, every file it lists there whole."""
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
    for name, size in files.items():
        file = folder / name
        if not file.is_file():
            raise HfclsError(f"checkpoint {folder} is damaged: {name} is missing")
        if file.stat().st_size != size:
            raise HfclsError(
                f"checkpoint {folder} is damaged: {name} has {file.stat().st_size} bytes, {size} when it was saved"
            )
    foreign = sorted({str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} - {*files, STATE_FILE})
    if foreign:
        raise HfclsError(
            f"checkpoint {folder} is damaged: it holds {foreign[0]}, which its save did not write "
            "(hfcls loads nothing it did not write)"
        )


# ----------------------------------------------------------------------------- write


def save(
    folder: Path,
    state: TrainState,
    accelerator,
    model,
    processor,
    *,
    scheduler_state: dict,
    ema_state: dict | None = None,
    whole: dict | None = None,
) -> Path:
    """Write `folder` atomically: it appears complete and on the disk, or not at all; return it.

    Every process calls it: Accelerate's state is saved by all. `state` is written as it is (its loader
    position, its metrics row, whether the optimizer is kept), with the size of every file added.
    `whole`: the weights every process gathered from a sharded model, for the main process to write.
    """
    tmp = temporary_folder(folder)
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    with storage_errors(
        f"checkpoint {folder}", folder.parent, RESUME_HINT, cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True)
    ):
        accelerator.save_state(str(tmp))
        # Every process writes its own RNG state into the folder: all must be done
        # before rank 0 renames it.
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            write_named_state(
                tmp,
                accelerator.unwrap_model(model, keep_torch_compile=False),
                processor,
                scheduler_state,
                ema_state,
                whole,
            )
            if not state.has_optimizer:
                for path in tmp.glob(OPTIMIZER_FILES):
                    path.unlink()
            files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
            (tmp / STATE_FILE).write_text(json.dumps(asdict(replace(state, files=files)), indent=1))
            publish_folder(tmp, folder)
    accelerator.wait_for_everyone()
    return folder


def write_named_state(
    folder: Path, model, processor, scheduler_state: dict, ema_state: dict | None, whole: dict | None
) -> None:
    """What hfcls keeps beside Accelerate's state, each in its own file; `whole`, the weights gathered
    from a sharded model, as the model.safetensors every reader of a checkpoint reads."""
    from safetensors.torch import save_file

    from hfcls.modeling.lora import is_lora, plain_view, save_adapter_config  # imports transformers

    if whole is not None:
        save_file({key: value.contiguous() for key, value in whole.items()}, folder / WEIGHTS_FILE)
    (folder / SCHEDULER_FILE).write_text(json.dumps(scheduler_state))
    if ema_state is not None:
        save_file(
            {key: value.detach().to("cpu", copy=True).contiguous() for key, value in ema_state.items()},
            folder / EMA_FILE,
        )
    if is_lora(model):
        save_adapter_config(model, folder)
    save_description(plain_view(model), processor, folder)


def remove(folder: Path) -> None:
    """Delete a checkpoint so that no moment leaves a half of it under its own name."""
    doomed = folder.with_name(folder.name + ".old")
    shutil.rmtree(doomed, ignore_errors=True)
    folder.rename(doomed)
    shutil.rmtree(doomed)
