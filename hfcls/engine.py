"""The training and evaluation loops, on one Accelerator.

Batches arrive as uint8 images; `Normalize` turns them into float on the
device. Every process runs the same steps; only the main process writes files.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, InitProcessGroupKwargs, ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from hfcls.data.in_memory import in_memory_loaders
from hfcls.data.loaders import attach_transforms, build_datasets, build_loader, class_names
from hfcls.data.transforms import Normalize
from hfcls.errors import HfclsError
from hfcls.export import image_processor, save_hf_folder
from hfcls.logs import append_jsonl, setup_logging
from hfcls.metrics import topk_accuracy
from hfcls.models import build_model
from hfcls.optim import build_optimizer, build_scheduler
from hfcls.recipe import save_recipe

logger = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"


@dataclass
class TrainState:
    """What the loop needs besides tensors to continue where it stopped."""

    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps completed
    best_metric: float | None = None
    best_epoch: int | None = None


def make_accelerator(recipe, work_dir: Path) -> Accelerator:
    return Accelerator(
        mixed_precision=recipe.train.mixed_precision,
        gradient_accumulation_steps=recipe.train.gradient_accumulation_steps,
        # A sampler seeded from the recipe shuffles the same way on every rank and
        # replays exactly on resume.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=recipe.seed),
        project_config=ProjectConfiguration(project_dir=str(work_dir), logging_dir=str(work_dir / "tensorboard")),
        log_with=_tracker(),
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(minutes=recipe.dist.timeout_minutes))],
    )


def _tracker():
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return None
    return "tensorboard"


# ----------------------------------------------------------------------------- batches


def model_inputs(batch: dict, normalize: Normalize, channels_last: bool) -> torch.Tensor:
    images = normalize(batch["pixel_values"])
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def check_bad_images(batch: dict, skip: bool, seen: list) -> None:
    """Raise on an undecodable image unless data.skip_bad_images; count those skipped."""
    if batch["bad_files"] and not skip:
        raise HfclsError(f"cannot decode image {batch['bad_files'][0]}; remove or replace it, "
                         "or set data.skip_bad_images=true to skip such files")
    seen.extend(batch["bad_files"])


def classification_loss(logits, labels, valid, label_smoothing: float) -> torch.Tensor:
    losses = F.cross_entropy(logits.float(), labels, reduction="none", label_smoothing=label_smoothing)
    return (losses * valid).sum() / valid.sum().clamp(min=1)


# ----------------------------------------------------------------------------- evaluation


@torch.inference_mode()
def predict(model, loader, accelerator: Accelerator, normalize: Normalize, channels_last=False,
            skip_bad_images=False, desc="eval"):
    """Logits, labels and a valid-image mask for the whole split, on every process.

    `gather_for_metrics` drops the samples Accelerate repeated to even out the
    last batches, so each sample counts exactly once.
    """
    model.eval()
    logits, labels, valid, bad = [], [], [], []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not accelerator.is_main_process):
        check_bad_images(batch, skip_bad_images, bad)
        out = model(pixel_values=model_inputs(batch, normalize, channels_last)).logits.float()
        gathered = accelerator.gather_for_metrics((out, batch["labels"], batch["valid"]))
        for store, value in zip((logits, labels, valid), gathered):
            store.append(value.cpu())
    if bad:
        logger.warning("skipped %d undecodable images, first: %s", len(bad), bad[0])
    return torch.cat(logits), torch.cat(labels), torch.cat(valid)


def compute_metrics(logits, labels, valid, topk) -> dict:
    logits, labels = logits[valid], labels[valid]
    metrics = {"loss": F.cross_entropy(logits, labels).item()}
    metrics.update(topk_accuracy(logits, labels, topk))
    return metrics


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(accelerator: Accelerator, state: TrainState, folder: Path) -> None:
    """Full state (model, optimizer, scheduler, scaler, RNG) written to a temporary
    folder and renamed, so a crash mid-save leaves the previous checkpoints intact."""
    tmp = folder.with_name(folder.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(asdict(state)))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    accelerator.wait_for_everyone()


def find_latest_checkpoint(work_dir: Path) -> Path | None:
    """The newest complete checkpoint (temporary folders are never complete)."""
    folders = [p for p in (work_dir / "checkpoints").glob("epoch_*") if (p / STATE_FILE).is_file()]
    return max(folders, key=lambda p: int(p.name.split("_")[1]), default=None)


def load_checkpoint(accelerator: Accelerator, folder: Path) -> TrainState:
    if not (folder / STATE_FILE).is_file():
        raise HfclsError(f"{folder} is not a complete hfcls checkpoint (no {STATE_FILE}); "
                         "pass a checkpoints/epoch_N folder or --resume-from auto")
    accelerator.load_state(str(folder))
    return TrainState(**json.loads((folder / STATE_FILE).read_text()))


# ----------------------------------------------------------------------------- training


def train(recipe, work_dir, resume_from: str | None = None, validate: bool = True) -> dict:
    """Run the recipe; return the last validation metrics (empty without validation)."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    accelerator = make_accelerator(recipe, work_dir)
    setup_logging(work_dir, accelerator.is_main_process)
    resume = _resolve_resume(resume_from, work_dir)
    if accelerator.is_main_process:
        save_recipe(recipe, work_dir / "recipe.yaml")
    set_seed(recipe.seed)  # identical model init on every rank

    data = recipe.data
    processor = image_processor(data)  # checks now that the eval pipeline can be exported
    splits = ("train", "val") if validate else ("train",)
    with accelerator.main_process_first():  # the main process fills the datasets cache
        dsets = attach_transforms(build_datasets(data, recipe.seed, splits), data)
    if "train" not in dsets:
        raise HfclsError("the recipe has no data.train source to train on")
    if validate and "val" not in dsets:
        raise HfclsError("no validation data: set data.val, data.train_val_split, or pass --no-validate")
    names = class_names(dsets["train"])
    model = build_model(recipe.model, names)
    if recipe.train.channels_last:
        model = model.to(memory_format=torch.channels_last)

    set_seed(recipe.seed, device_specific=True)  # augmentations differ between ranks
    pin = accelerator.device.type == "cuda" and data.pin_memory
    train_loader = build_loader(dsets["train"], data, data.batch_size, True, recipe.seed, pin)
    val_loader = None
    if validate:
        val_loader = build_loader(dsets["val"], data, data.eval_batch_size or data.batch_size, False, recipe.seed, pin)
    optimizer = build_optimizer(model, recipe.optim)
    if data.in_memory:  # splits held on the device, augmented there per batch; they shard themselves
        model, optimizer = accelerator.prepare(model, optimizer)
        train_loader, val_loader = in_memory_loaders(dsets, data, recipe.seed, accelerator)
    else:
        model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    steps_per_epoch = math.ceil(len(train_loader) / recipe.train.gradient_accumulation_steps)
    scheduler = build_scheduler(optimizer, recipe.schedule, recipe.train.epochs, steps_per_epoch)
    # Stepped by hand once per optimizer step, so not prepared; saved with the state.
    accelerator.register_for_checkpointing(scheduler)
    normalize = Normalize(data.mean, data.std).to(accelerator.device)

    state = TrainState()
    if resume is not None:
        state = load_checkpoint(accelerator, resume)
        logger.info("resumed from %s at epoch %d, step %d", resume, state.epoch, state.step)
    if accelerator.is_main_process:
        accelerator.init_trackers("hfcls")
    logger.info(
        "%d train / %s val images, %d classes; batch %d x %d processes = %d; %d steps per epoch",
        len(dsets["train"]), len(dsets["val"]) if validate else "no", len(names), data.batch_size,
        accelerator.num_processes, data.batch_size * accelerator.num_processes, steps_per_epoch,
    )

    metrics: dict = {}
    for epoch in range(state.epoch, recipe.train.epochs):
        train_loader.set_epoch(epoch)
        row = train_one_epoch(recipe, accelerator, model, optimizer, scheduler, train_loader, normalize, state)
        state.epoch = epoch + 1
        last = state.epoch == recipe.train.epochs
        if validate and (state.epoch % recipe.evaluation.interval == 0 or last):
            metrics = compute_metrics(*predict(model, val_loader, accelerator, normalize, recipe.train.channels_last,
                                               data.skip_bad_images, desc=f"eval {state.epoch}"),
                                      recipe.evaluation.topk)
            row.update({f"val_{k}": v for k, v in metrics.items()})
            _export(recipe, accelerator, model, processor, work_dir, metrics, state)
        if state.epoch % recipe.checkpoint.interval == 0 or last:
            save_checkpoint(accelerator, state, work_dir / "checkpoints" / f"epoch_{state.epoch}")
            _prune_checkpoints(recipe, accelerator, work_dir, state)
        _record(accelerator, work_dir, row)

    if not validate:
        _save_export(accelerator, model, processor, work_dir / "latest")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return metrics


def train_one_epoch(recipe, accelerator, model, optimizer, scheduler, loader, normalize, state) -> dict:
    cfg = recipe.train
    model.train()
    running = torch.zeros((), device=accelerator.device)
    seen, bad, start = 0, [], time.perf_counter()
    bar = tqdm(total=len(loader), desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
               disable=not accelerator.is_main_process, leave=False)
    for i, batch in enumerate(loader):
        check_bad_images(batch, recipe.data.skip_bad_images, bad)
        with accelerator.accumulate(model):
            logits = model(pixel_values=model_inputs(batch, normalize, cfg.channels_last)).logits
            loss = classification_loss(logits, batch["labels"], batch["valid"], cfg.label_smoothing)
            accelerator.backward(loss)
            if accelerator.sync_gradients and cfg.clip_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
            optimizer.step()
            if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        if accelerator.sync_gradients:
            state.step += 1
        running += loss.detach()
        seen += len(batch["labels"])
        bar.update()
        if (i + 1) % cfg.log_interval == 0:  # the only host-device sync in the loop
            bar.set_postfix(loss=f"{running.item() / (i + 1):.4f}", lr=f"{scheduler.get_last_lr()[0]:.3g}")
    bar.close()
    elapsed = time.perf_counter() - start
    if bad:
        logger.warning("skipped %d undecodable training images, first: %s", len(bad), bad[0])
    loss = accelerator.reduce(running / max(len(loader), 1), reduction="mean").item()
    images = seen * accelerator.num_processes
    return {
        "epoch": state.epoch + 1,
        "step": state.step,
        "lr": scheduler.get_last_lr()[0],
        "loss": loss,
        "images_per_sec": images / elapsed,
        "epoch_time": elapsed,
    }


def _resolve_resume(resume_from, work_dir: Path) -> Path | None:
    if resume_from is None:
        if find_latest_checkpoint(work_dir) is not None:
            raise HfclsError(f"work dir {work_dir} already holds checkpoints; pass --resume-from auto to "
                             "continue that run, or choose another --work-dir")
        return None
    if resume_from == "auto":
        latest = find_latest_checkpoint(work_dir)
        if latest is None:
            raise HfclsError(f"--resume-from auto: no complete checkpoint under {work_dir / 'checkpoints'}")
        return latest
    path = Path(resume_from)
    if not path.is_dir():
        raise HfclsError(f"--resume-from {resume_from}: no such checkpoint folder")
    return path


def _export(recipe, accelerator, model, processor, work_dir, metrics, state) -> None:
    _save_export(accelerator, model, processor, work_dir / "latest")
    key, rule = recipe.evaluation.save_best, recipe.evaluation.rule
    if key is None:
        return
    if key not in metrics:
        raise HfclsError(f"evaluation.save_best: no metric {key!r}; metrics are {', '.join(metrics)}")
    value = metrics[key]
    better = state.best_metric is None or (value > state.best_metric if rule == "greater" else value < state.best_metric)
    if better:
        state.best_metric, state.best_epoch = value, state.epoch
        _save_export(accelerator, model, processor, work_dir / "best")
        logger.info("new best %s %.4f at epoch %d", key, value, state.epoch)


def _save_export(accelerator, model, processor, folder) -> None:
    if accelerator.is_main_process:
        save_hf_folder(accelerator.unwrap_model(model), processor, folder)
    accelerator.wait_for_everyone()


def _prune_checkpoints(recipe, accelerator, work_dir, state) -> None:
    keep = recipe.checkpoint.max_keep
    if keep is None or not accelerator.is_main_process:
        return
    folders = sorted((work_dir / "checkpoints").glob("epoch_*"), key=lambda p: int(p.name.split("_")[1].split(".")[0]))
    complete = [p for p in folders if (p / STATE_FILE).is_file()]
    for old in complete[:-keep]:
        shutil.rmtree(old)


def _record(accelerator, work_dir, row) -> None:
    logger.info("epoch %d: %s", row["epoch"], ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k != "epoch"))
    accelerator.log({k: v for k, v in row.items() if k not in ("epoch", "step")}, step=row["step"])
    if accelerator.is_main_process:
        append_jsonl(work_dir / "metrics.jsonl", row)
