"""The training and evaluation loops, on one Accelerator.

Batches arrive as uint8 images; `Normalize` turns them into float on the
device. Every process runs the same steps; only the main process writes files.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DataLoaderConfiguration, InitProcessGroupKwargs, ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from hfcls import checkpoints
from hfcls.checkpoints import TrainState
from hfcls.data.in_memory import InMemoryLoader, in_memory_loaders
from hfcls.data.loaders import attach_transforms, build_datasets, build_loader, class_names, pin_memory
from hfcls.data.streaming import TransformedStream
from hfcls.data.transforms import Normalize
from hfcls.dist import cpu_only_processes, lost_processes_explained
from hfcls.ema import ModelEma, ema_settings
from hfcls.errors import HfclsError
from hfcls.export import image_processor, save_hf_folder
from hfcls.loading import load_finetune_weights
from hfcls.logs import append_jsonl, setup_logging
from hfcls.metrics import evaluate_metrics
from hfcls.mixing import mixing_collate
from hfcls.models import build_model
from hfcls.optim import build_optimizer, build_scheduler
from hfcls.precision import check_mixed_precision, default_device_type
from hfcls.publish import publish_run
from hfcls.recipe import save_recipe
from hfcls.seeding import SeededSamples
from hfcls.signals import StopRequest, TrainingInterrupted
from hfcls.trackers import trackers

logger = logging.getLogger(__name__)

COMPILE_BACKEND = "inductor"  # torch.compile's backend for train.compile


def make_accelerator(recipe, work_dir: Path) -> Accelerator:
    check_mixed_precision(recipe.train.mixed_precision, default_device_type())
    return Accelerator(
        cpu=cpu_only_processes(),  # several processes without GPUs: one gloo group
        mixed_precision=recipe.train.mixed_precision,
        gradient_accumulation_steps=recipe.train.gradient_accumulation_steps,
        # A sampler seeded from the recipe shuffles the same way on every rank and
        # replays exactly on resume.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=recipe.seed),
        project_config=ProjectConfiguration(project_dir=str(work_dir), logging_dir=str(work_dir / "tensorboard")),
        log_with=trackers(recipe.train.log_with),
        dynamo_backend=COMPILE_BACKEND if recipe.train.compile else None,
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(minutes=recipe.dist.timeout_minutes))],
    )


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
    """Mean cross-entropy over the valid images; `labels` are class ids or, after
    MixUp/CutMix, soft labels of shape (batch, classes)."""
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
    metrics.update(evaluate_metrics(["accuracy"], logits.softmax(dim=1), labels, topk=topk))
    return metrics


# ----------------------------------------------------------------------------- training


@dataclass
class Run:
    """Everything one training run holds, prepared by Accelerate."""

    recipe: object
    work_dir: Path
    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    train_loader: object
    val_loader: object
    samples: SeededSamples  # the training set, seeded per sample and epoch
    normalize: Normalize
    processor: object  # the exported preprocessor, equal to the eval pipeline
    ema: ModelEma | None
    stop: StopRequest
    total_steps: int
    started: tuple = (0.0, 0)  # (time, step) when this process started training

    def eta(self, step: int) -> str:
        """Time left for the whole run, from the pace since this process started."""
        start_time, start_step = self.started
        if step <= start_step:
            return "?"
        pace = (time.perf_counter() - start_time) / (step - start_step)
        return tqdm.format_interval(pace * (self.total_steps - step))

    @property
    def eval_model(self):
        """The model that is evaluated and exported: the EMA when enabled."""
        return self.ema.module if self.ema is not None else self.model


def train(recipe, work_dir, resume_from: str | None = None, validate: bool = True,
          load_from: str | None = None) -> dict:
    """Run the recipe; return the last validation metrics (empty without validation)."""
    if resume_from is not None and load_from is not None:
        raise HfclsError("--resume-from and --load-from exclude each other: --resume-from continues a run "
                         "(optimizer, epoch, RNG); --load-from starts a new run from a model's weights")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    resume = checkpoints.resolve_resume(resume_from, work_dir)
    if recipe.train.deterministic:
        # cuBLAS refuses deterministic mode without a fixed workspace; read when CUDA starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    accelerator = make_accelerator(recipe, work_dir)
    try:
        with lost_processes_explained(recipe.dist.timeout_minutes):  # while the process group still exists
            return run_training(recipe, work_dir, accelerator, resume, validate, load_from)
    finally:
        accelerator.end_training()
        # Accelerate keeps its settings (mixed precision, compile) for the whole process;
        # forget them so another `train` call in this process can choose its own.
        AcceleratorState._reset_state(reset_partial_state=True)


def run_training(recipe, work_dir, accelerator, resume, validate, load_from) -> dict:
    setup_logging(work_dir, accelerator.is_main_process)
    ema = ema_settings(recipe.train.ema)
    if accelerator.is_main_process:
        save_recipe(recipe, work_dir / "recipe.yaml")
    processor = image_processor(recipe.data)  # checks now that the eval pipeline can be exported
    set_seed(recipe.seed, deterministic=recipe.train.deterministic)  # identical model init on every rank

    dsets = load_datasets(recipe, accelerator, validate)
    names = class_names(dsets["train"])
    model = build_model(recipe.model, names)
    if load_from is not None:
        load_finetune_weights(model, load_from)
    model = adapt_model(model, recipe.train, accelerator.num_processes, accelerator.device.type)
    if ema is not None:
        ema = ModelEma(model, **ema)
        ema.module.to(accelerator.device)
    set_seed(recipe.seed, device_specific=True)  # model randomness (dropout) differs between ranks
    run = prepare_run(recipe, work_dir, accelerator, model, dsets, validate, ema, processor)
    fingerprint = checkpoints.recipe_fingerprint(recipe, len(names))
    state = TrainState(recipe=fingerprint)
    if resume is not None:
        state = checkpoints.load_checkpoint(accelerator, resume, fingerprint)
        logger.info("resumed from %s at epoch %d, step %d", resume, state.epoch, state.step)
    if accelerator.is_main_process:
        accelerator.init_trackers("hfcls")
    logger.info(
        "%s train / %s val images, %d classes; batch %d x %d processes x %d accumulation = %d; %d steps per epoch",
        len(dsets["train"]) if hasattr(dsets["train"], "__len__") else "streamed",
        len(dsets["val"]) if validate else "no", len(names), recipe.data.batch_size,
        accelerator.num_processes, recipe.train.gradient_accumulation_steps, total_batch_size(recipe, accelerator),
        steps_per_epoch(recipe, run.train_loader),
    )
    run.started = (time.perf_counter(), state.step)
    with run.stop.installed():
        metrics = train_epochs(run, state, validate)
    if not validate:
        _save_export(accelerator, run.eval_model, processor, work_dir / "latest")
    if accelerator.is_main_process:
        publish_run(recipe, work_dir, checkpoints.find_latest_checkpoint(work_dir))
    accelerator.wait_for_everyone()
    return metrics


def load_datasets(recipe, accelerator, validate):
    splits = ("train", "val") if validate else ("train",)
    with accelerator.main_process_first():  # the main process fills the datasets cache
        dsets = attach_transforms(build_datasets(recipe.data, recipe.seed, splits), recipe.data)
    if "train" not in dsets:
        raise HfclsError("the recipe has no data.train source to train on")
    if validate and "val" not in dsets:
        raise HfclsError("no validation data: set data.val, data.train_val_split, or pass --no-validate")
    return dsets


def adapt_model(model, train_section, num_processes: int, device_type: str):
    """train.sync_bn (several processes only) and train.channels_last."""
    if train_section.sync_bn and num_processes > 1:
        if device_type == "cpu":  # torch's SyncBatchNorm would fail at the first training step
            raise HfclsError("train.sync_bn needs GPUs: torch's SyncBatchNorm does not run on CPU; "
                             "set train.sync_bn=false for this CPU run")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if train_section.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def total_batch_size(recipe, accelerator) -> int:
    return recipe.data.batch_size * accelerator.num_processes * recipe.train.gradient_accumulation_steps


def scaled_optim(recipe, accelerator):
    """train.auto_scale_lr: the LR grows linearly with the real total batch (Goyal et al.)."""
    scale = recipe.train.auto_scale_lr
    if scale is None:
        return recipe.optim
    total = total_batch_size(recipe, accelerator)
    lr = recipe.optim.lr * total / scale["base_batch_size"]
    logger.info("auto_scale_lr: lr %g x total batch %d / base batch %d = %g",
                recipe.optim.lr, total, scale["base_batch_size"], lr)
    return dataclasses.replace(recipe.optim, lr=lr)


def steps_per_epoch(recipe, train_loader) -> int:
    return math.ceil(len(train_loader) / recipe.train.gradient_accumulation_steps)


def prepare_run(recipe, work_dir, accelerator, model, dsets, validate, ema, processor) -> Run:
    data = recipe.data
    optimizer = build_optimizer(model, scaled_optim(recipe, accelerator))
    if data.in_memory:  # splits held on the device and augmented there per batch; they shard themselves
        model, optimizer = accelerator.prepare(model, optimizer)
        train_loader, val_loader = in_memory_loaders(dsets, data, recipe.seed, accelerator, recipe.train)
        samples = train_loader
    else:
        samples, train_loader, val_loader = build_loaders(recipe, accelerator, dsets, validate)
        model, optimizer, train_loader, val_loader = accelerator.prepare(model, optimizer, train_loader, val_loader)
    scheduler = build_scheduler(optimizer, recipe.schedule, recipe.train.epochs, steps_per_epoch(recipe, train_loader))
    # Stepped by hand once per optimizer step, so not prepared; saved with the state.
    accelerator.register_for_checkpointing(scheduler)
    if ema is not None:
        accelerator.register_for_checkpointing(ema)
    normalize = Normalize(data.mean, data.std).to(accelerator.device)
    total_steps = recipe.train.epochs * steps_per_epoch(recipe, train_loader)
    return Run(recipe, work_dir, accelerator, model, optimizer, scheduler, train_loader, val_loader,
               samples, normalize, processor, ema, StopRequest(), total_steps)


def build_loaders(recipe, accelerator, dsets, validate):
    """(training samples, train loader, val loader or None) reading through DataLoader workers."""
    data = recipe.data
    pin = pin_memory(data, accelerator.device)
    process = (accelerator.process_index, accelerator.num_processes, accelerator.device)
    samples, train_loader = build_train_loader(recipe, dsets["train"], pin, process)
    val_loader = None
    if validate:
        val_loader = build_loader(dsets["val"], data, data.eval_batch_size or data.batch_size, False, recipe.seed, pin)
    return samples, train_loader, val_loader


def build_train_loader(recipe, train_set, pin: bool, process):
    """(samples, loader): map-style data seeded per sample, MixUp/CutMix in the collate;
    a stream is shuffled and sharded by its own loader."""
    stream = isinstance(train_set, TransformedStream)
    if stream and (recipe.train.mixup_alpha > 0 or recipe.train.cutmix_alpha > 0):
        raise HfclsError("train.mixup_alpha/cutmix_alpha need per-sample seeds, which a stream (streaming: true) "
                         "lacks; turn MixUp/CutMix off or use a map-style source")
    samples = train_set if stream else SeededSamples(train_set, recipe.seed)
    loader = build_loader(samples, recipe.data, recipe.data.batch_size, True, recipe.seed, pin, process=process)
    if not stream:
        # The loader module owns batching; MixUp/CutMix wrap its collate function.
        loader.collate_fn = mixing_collate(loader.collate_fn, len(class_names(train_set)), recipe.train)
    return samples, loader


def train_epochs(run: Run, state: TrainState, validate: bool) -> dict:
    recipe, accelerator = run.recipe, run.accelerator
    metrics: dict = {}
    for epoch in range(state.epoch, recipe.train.epochs):
        row = train_one_epoch(run, state, epoch)
        state.epoch, state.batch_in_epoch, state.epoch_loss_sum = epoch + 1, 0, 0.0
        last = state.epoch == recipe.train.epochs
        if validate and (state.epoch % recipe.evaluation.interval == 0 or last):
            metrics = evaluate(run, f"eval {state.epoch}")
            row.update({f"val_{k}": v for k, v in metrics.items()})
            _export(run, metrics, state)
        signum = run.stop.should_stop(accelerator)
        if state.epoch % recipe.checkpoint.interval == 0 or last or signum:
            save(run, state)
        _record(accelerator, run.work_dir, row)
        if signum and not last:
            raise TrainingInterrupted(signum, state.step, checkpoints.find_latest_checkpoint(run.work_dir),
                                      run.work_dir)
    return metrics


def evaluate(run: Run, desc: str) -> dict:
    with run.accelerator.autocast():  # the EMA copy is not wrapped by prepare()
        outputs = predict(run.eval_model, run.val_loader, run.accelerator, run.normalize,
                          run.recipe.train.channels_last, run.recipe.data.skip_bad_images, desc=desc)
    return compute_metrics(*outputs, run.recipe.evaluation.topk)


def save(run: Run, state: TrainState) -> Path:
    folder = run.work_dir / "checkpoints" / checkpoints.checkpoint_name(state)
    checkpoints.save_checkpoint(run.accelerator, state, folder, run.recipe.checkpoint.save_optimizer)
    if run.accelerator.is_main_process:
        checkpoints.prune_checkpoints(run.work_dir, run.recipe.checkpoint.max_keep, state.best_epoch)
    run.accelerator.wait_for_everyone()
    return folder


def train_one_epoch(run: Run, state: TrainState, epoch: int) -> dict:
    recipe, accelerator, model, optimizer, scheduler = (run.recipe, run.accelerator, run.model,
                                                         run.optimizer, run.scheduler)
    cfg = recipe.train
    run.train_loader.set_epoch(epoch)
    run.samples.set_epoch(epoch)
    total, done = len(run.train_loader), state.batch_in_epoch
    # A mid-epoch checkpoint resumes at the next batch, in the same order.
    loader = run.train_loader
    if done:  # resuming mid-epoch: the batches of this epoch already trained on
        loader = loader.skip_first_batches(done) if isinstance(loader, InMemoryLoader) else \
            accelerator.skip_first_batches(loader, done)
    model.train()
    running = torch.tensor(state.epoch_loss_sum, device=accelerator.device)
    seen, bad, start = 0, [], time.perf_counter()
    bar = tqdm(total=total, initial=done, desc=f"epoch {epoch + 1}/{cfg.epochs}",
               disable=not accelerator.is_main_process, leave=False)
    # Skipping a bad step needs its loss on the host before the update: a sync per step.
    # Otherwise the losses are checked in batches, at log intervals and before any save.
    watch = None if cfg.max_bad_steps else LossWatch()
    for i, batch in enumerate(loader, start=done):
        check_bad_images(batch, recipe.data.skip_bad_images, bad)
        with accelerator.accumulate(model):
            logits = model(pixel_values=model_inputs(batch, run.normalize, cfg.channels_last)).logits
            loss = classification_loss(logits, batch["labels"], batch["valid"], cfg.label_smoothing)
            if watch is not None:
                watch.record(accelerator, loss, place(state, i))
            if watch is not None or loss_is_finite(run, state, loss, i):
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.clip_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.clip_grad_norm)
                optimizer.step()
                running += loss.detach()
            # A step skipped for a non-finite loss still advances the schedule, which stays on time.
            if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        seen += len(batch["labels"])
        state.batch_in_epoch = i + 1
        bar.update()
        if accelerator.sync_gradients:
            state.step += 1
            if run.ema is not None:
                run.ema.update(model, state.step)
            step_boundary(run, state, running, watch, mid_epoch=i + 1 < total)
        if (i + 1) % cfg.log_interval == 0:  # a host-device sync
            bar.set_postfix(loss=f"{checked_loss(run, state, watch, running) / (i + 1):.4f}",
                            lr=f"{scheduler.get_last_lr()[0]:.3g}", eta=run.eta(state.step))
    bar.close()
    elapsed = time.perf_counter() - start
    if bad:
        logger.warning("skipped %d undecodable training images, first: %s", len(bad), bad[0])
    checked_loss(run, state, watch, running)
    loss = accelerator.reduce(running / max(total, 1), reduction="mean").item()
    return {
        "epoch": epoch + 1,
        "step": state.step,
        "lr": scheduler.get_last_lr()[0],
        "loss": loss,
        "images_per_sec": seen * accelerator.num_processes / elapsed,
        "epoch_time": elapsed,
    }


def step_boundary(run: Run, state: TrainState, running, watch, mid_epoch: bool) -> None:
    """Mid-epoch checkpoints: every checkpoint.interval_steps, and on SIGTERM/SIGINT (then stop).

    At an epoch's last step the epoch-end code saves instead.
    """
    if not mid_epoch:
        return
    interval = run.recipe.checkpoint.interval_steps
    # Asking the other processes about signals is a collective and a sync: every log_interval steps.
    ask = run.accelerator.num_processes == 1 or state.step % run.recipe.train.log_interval == 0
    signum = run.stop.should_stop(run.accelerator) if ask else 0
    if not (signum or (interval and state.step % interval == 0)):
        return
    checked_loss(run, state, watch, running)  # no checkpoint after a non-finite loss
    state.epoch_loss_sum = run.accelerator.reduce(running, reduction="mean").item()
    folder = save(run, state)
    if signum:
        raise TrainingInterrupted(signum, state.step, folder, run.work_dir)


def place(state: TrainState, batch_index: int) -> str:
    return f"epoch {state.epoch + 1}, batch {batch_index + 1}, optimizer step {state.step + 1}"


def loss_is_finite(run: Run, state: TrainState, loss, batch_index: int) -> bool:
    """The NaN guard with train.max_bad_steps > 0: skip a step whose loss is NaN or
    infinite, stop after train.max_bad_steps.

    Every process must skip together (their gradients are all-reduced), so the
    verdict is reduced; this reads one value back from the device per batch.
    """
    bad = run.accelerator.reduce((~torch.isfinite(loss.detach())).float(), reduction="sum").item()
    if not bad:
        return True
    state.bad_steps += 1
    where = place(state, batch_index)
    if state.bad_steps > run.recipe.train.max_bad_steps:
        raise bad_loss_error(run, state, loss.item(), where)
    logger.warning("non-finite loss at %s: step skipped (%d of train.max_bad_steps=%d)",
                   where, state.bad_steps, run.recipe.train.max_bad_steps)
    return False


def bad_loss_error(run: Run, state: TrainState, loss: float, where: str) -> HfclsError:
    last = checkpoints.find_latest_checkpoint(run.work_dir)
    shown = loss if not math.isfinite(loss) else "non-finite on another process"
    return HfclsError(
        f"loss is {shown} at {where} ({state.bad_steps} non-finite so far, train.max_bad_steps="
        f"{run.recipe.train.max_bad_steps}); last good checkpoint: {last or 'none yet'}. Lower optim.lr, "
        "set train.clip_grad_norm, or raise train.max_bad_steps; then --resume-from auto or start over")


class LossWatch:
    """The NaN guard with train.max_bad_steps = 0 (stop at the first non-finite loss),
    without a host-device sync per step.

    Each step's loss and its non-finite flag (agreed by all processes) stay on the
    device until `read` fetches them all in one transfer. Steps after a bad one
    train on NaN weights, but the loop reads before anything is evaluated or saved,
    so no checkpoint or export holds them.
    """

    def __init__(self):
        self.losses, self.flags, self.places = [], [], []

    def record(self, accelerator, loss, where: str) -> None:
        loss = loss.detach()
        self.losses.append(loss)
        self.flags.append(accelerator.reduce((~torch.isfinite(loss)).float(), reduction="sum"))
        self.places.append(where)

    def read(self, running) -> tuple:
        """(the running loss sum, (loss, place) of the first non-finite loss or None)."""
        count = len(self.flags)
        values = torch.stack([running.float(), *self.losses, *self.flags]).tolist()
        losses, flags = values[1:1 + count], values[1 + count:]
        first = next(((loss, where) for loss, bad, where in zip(losses, flags, self.places) if bad), None)
        self.losses, self.flags, self.places = [], [], []
        return values[0], first


def checked_loss(run: Run, state: TrainState, watch, running) -> float:
    """The running loss sum, after raising on any non-finite loss the watch holds."""
    if watch is None:
        return running.item()
    value, first = watch.read(running)
    if first is not None:
        state.bad_steps += 1
        raise bad_loss_error(run, state, *first)
    return value


def _export(run: Run, metrics: dict, state: TrainState) -> None:
    recipe, accelerator = run.recipe, run.accelerator
    _save_export(accelerator, run.eval_model, run.processor, run.work_dir / "latest")
    key, rule = recipe.evaluation.save_best, recipe.evaluation.rule
    if key is None:
        return
    if key not in metrics:
        raise HfclsError(f"evaluation.save_best: no metric {key!r}; metrics are {', '.join(metrics)}")
    value = metrics[key]
    better = state.best_metric is None or (value > state.best_metric if rule == "greater" else value < state.best_metric)
    if better:
        state.best_metric, state.best_epoch = value, state.epoch
        _save_export(accelerator, run.eval_model, run.processor, run.work_dir / "best")
        logger.info("new best %s %.4f at epoch %d", key, value, state.epoch)


def _save_export(accelerator, model, processor, folder) -> None:
    if accelerator.is_main_process:
        save_hf_folder(accelerator.unwrap_model(model, keep_torch_compile=False), processor, folder)
    accelerator.wait_for_everyone()


def _record(accelerator, work_dir, row) -> None:
    logger.info("epoch %d: %s", row["epoch"], ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k != "epoch"))
    accelerator.log({k: v for k, v in row.items() if k not in ("epoch", "step")}, step=row["step"])
    if accelerator.is_main_process:
        append_jsonl(work_dir / "metrics.jsonl", row)
