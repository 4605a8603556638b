"""The training loop: epochs of `train_step`, evaluation, exports and checkpoints.

Every process runs the same steps; only the main process writes files.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from hfcls.artifacts import checkpoint
from hfcls.artifacts.checkpoint import TrainState
from hfcls.artifacts.export import copy_hf_folder, save_hf_folder, weights_record
from hfcls.artifacts.resume import recipe_fingerprint, restore
from hfcls.artifacts.run_dir import (
    RECIPE_FILE,
    append_row,
    checkpoint_folder,
    prune_checkpoints,
    resolve_resume,
    restore_rows,
    start_over,
)
from hfcls.data.decode import check_bad_images
from hfcls.engine.dist import whole_state_dict
from hfcls.engine.guard import NanGuard
from hfcls.engine.setup import accelerator_session, build_run
from hfcls.engine.signals import TrainingInterrupted
from hfcls.engine.steps import train_step
from hfcls.engine.threads import choose_threads
from hfcls.engine.trackers import tracker_config
from hfcls.engine.validation import validation_metrics
from hfcls.errors import HfclsError
from hfcls.extras import install_hint, is_installed
from hfcls.logs import setup_logging
from hfcls.metrics import best_metric_key
from hfcls.modeling.lora import merged
from hfcls.predict.forward import predict
from hfcls.recipe import save_recipe
from hfcls.recipe.resolution import train_side

logger = logging.getLogger(__name__)

WALL_CLOCK_KEYS = ("images_per_sec", "epoch_time", "eval_time")  # the metrics.jsonl columns a rerun may change


@dataclass
class Fit:
    """What a training run ends with."""

    metrics: dict  # the last validation metrics (empty without validation)
    checkpoint: Path | None  # the checkpoint of the final weights: the last one saved (or resumed from)
    is_main_process: bool
    model: object  # the evaluated model (the EMA when there is one), unwrapped
    weights: dict | None  # its state dict on the main process where the model holds only a shard (FSDP)


def fit(
    recipe,
    work_dir,
    *,
    resume_from: str | None = None,
    validate: bool = True,
    load_from: str | None = None,
    restart: bool = False,
) -> Fit:
    """Train the recipe into `work_dir` (on every process of the job); `restart`: an earlier run's files
    there are moved aside first (hfcls.artifacts.run_dir.set_aside)."""
    if resume_from is not None and load_from is not None:
        raise HfclsError(
            "resume_from and load_from exclude each other: resume_from continues a run "
            "(optimizer, epoch, RNG); load_from starts a new run from a model's weights",
            param="resume_from",
        )
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    aside = start_over(work_dir, resume_from) if restart else None  # before log.txt is opened: it moves too
    resume = None if restart else resolve_resume(resume_from, work_dir)
    if recipe.train.deterministic:
        # cuBLAS refuses deterministic mode without a fixed workspace; read when CUDA starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    with accelerator_session(recipe, work_dir) as accelerator:
        setup_logging(work_dir, accelerator.is_main_process)
        if aside is not None:
            logger.warning("--restart: the earlier run's files are in %s, as they were", aside)
        run = build_run(recipe, work_dir, accelerator, validate=validate, load_from=load_from)
        state = start(run, resume)
        if accelerator.is_main_process:  # once the recipe is known to run: a refused resume keeps the old one
            save_recipe(recipe, work_dir / RECIPE_FILE)
        with run.stop.installed():
            metrics, last = train_epochs(run, state, validate, resume)
        if not validate:
            export(run, run.work_dir / "latest", weights_record(state.epoch, state.step, {}))
        return Fit(metrics, last, accelerator.is_main_process, *evaluated_model(run))


def start(run, resume: Path | None) -> TrainState:
    """The state to train from (a resumed checkpoint's, or a fresh one), trackers told the recipe;
    torch's threads chosen (a resumed run keeps its checkpoint's count)."""
    accelerator, recipe = run.accelerator, run.recipe
    fingerprint = recipe_fingerprint(
        recipe, len(run.class_names), accelerator.num_processes, run.total_steps // recipe.train.epochs
    )
    state = TrainState(recipe=fingerprint)
    if resume is not None:
        state = restore(resume, fingerprint, accelerator, run.scheduler, run.ema, run.train_loader)
        if accelerator.is_main_process:
            restore_rows(run.work_dir, state)
        logger.info("resumed from %s at epoch %d, step %d", resume, state.epoch, state.step)
    state.cpu_threads = choose_threads(state.cpu_threads)  # 0, a fresh run's: by the cores free now
    if accelerator.is_main_process:
        accelerator.init_trackers("hfcls", config=tracker_config(recipe))
    run.started = (time.perf_counter(), state.step)
    return state


def train_epochs(run, state: TrainState, validate: bool, resumed: Path | None = None) -> tuple:
    """Train the epochs left; return the last validation metrics and the last checkpoint saved
    (`resumed`, the one training started from, until another is)."""
    recipe, accelerator = run.recipe, run.accelerator
    guard = NanGuard(accelerator, state, recipe.train.max_bad_steps, last_checkpoint=resumed)
    metrics: dict = {}
    for epoch in range(state.epoch, recipe.train.epochs):
        row = train_one_epoch(run, state, epoch, guard)
        state.epoch, state.batch_in_epoch, state.epoch_loss_sum = epoch + 1, 0, 0.0
        last = state.epoch == recipe.train.epochs
        if validate and (state.epoch % recipe.evaluation.interval == 0 or last):
            started = time.perf_counter()
            metrics = evaluate(run, f"eval {state.epoch}")
            row.update({f"val_{k}": v for k, v in metrics.items()}, eval_time=time.perf_counter() - started)
            export_epoch(run, metrics, state)
        signum = run.stop.should_stop(accelerator)
        if state.epoch % recipe.checkpoint.interval == 0 or last or signum:
            # The row rides in the checkpoint: a kill before record() loses nothing.
            guard.last_checkpoint = save(run, state, row)
        record(run, row)
        if signum and not last:
            raise TrainingInterrupted(signum, state.step, guard.last_checkpoint, run.work_dir)
    return metrics, guard.last_checkpoint


def optimizer_stepped(run, state: TrainState, running, guard, mid_epoch: bool) -> None:
    state.step += 1
    if state.step == run.started[1] + 1:
        log_first_step(run)
    if run.ema is not None:
        run.ema.update(run.model, state.step)
    step_boundary(run, state, running, guard, mid_epoch=mid_epoch)


def train_one_epoch(run, state: TrainState, epoch: int, guard: NanGuard) -> dict:
    accelerator, cfg = run.accelerator, run.recipe.train
    run.train_loader.set_epoch(epoch)
    side = train_side(run.recipe.data.progressive_resizing, epoch)  # a function of the epoch: resumes exactly
    run.train_loader.set_resolution(side)
    run.model.train()
    total, done = len(run.train_loader), state.batch_in_epoch  # a mid-epoch checkpoint resumes at the next batch
    running = torch.tensor(state.epoch_loss_sum, device=accelerator.device)
    trained = torch.zeros((), dtype=torch.long, device=accelerator.device)  # valid images, read once at the end
    seen, bad, start = 0, [], time.perf_counter()
    # A `with`: an error mid-epoch clears the bar, so the error line starts a line of its own.
    with tqdm(
        total=total,
        initial=done,
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        disable=not accelerator.is_main_process,
        leave=False,
    ) as bar:
        for i, batch in enumerate(run.train_loader, start=done):
            check_bad_images(batch, run.recipe.data.skip_bad_images, bad)
            loss = train_step(run, batch, guard.at(i).admits)
            if loss is not None:
                running += loss
            seen += len(batch["labels"])
            trained += batch["valid"].sum()
            state.batch_in_epoch = i + 1
            bar.update()
            if accelerator.sync_gradients:
                optimizer_stepped(run, state, running, guard, mid_epoch=i + 1 < total)
            if (i + 1) % cfg.log_interval == 0:  # a host-device sync
                bar.set_postfix(
                    loss=f"{guard.checked(running) / (i + 1):.4f}",
                    lr=f"{run.scheduler.get_last_lr()[0]:.3g}",
                    eta=run.eta(state.step),
                )
    elapsed = time.perf_counter() - start
    if bad:
        logger.warning("skipped %d undecodable training images, first: %s", len(bad), bad[0])
    if accelerator.reduce(trained, reduction="sum").item() == 0:
        raise HfclsError(
            f"epoch {epoch + 1} had no image to train on: every one was undecodable and skipped "
            f"(data.skip_bad_images), first {bad[0] if bad else 'none'}; check the training data"
        )
    guard.checked(running)
    return {
        "epoch": epoch + 1,
        "step": state.step,
        "lr": run.scheduler.get_last_lr()[0],
        "loss": accelerator.reduce(running / max(total, 1), reduction="mean").item(),
        "images_per_sec": seen * accelerator.num_processes / elapsed,
        "epoch_time": elapsed,
        **({"train_size": side} if side is not None else {}),
    }


def log_first_step(run) -> None:
    """How long the set-up took: from the process start, which psutil reads (the bench extra), else
    from the start of training."""
    if not is_installed("psutil"):
        logger.info(
            "first optimizer step %.2f s after training started (the time since the process started needs psutil; %s)",
            time.perf_counter() - run.started[0],
            install_hint("bench"),
        )
        return
    import psutil

    logger.info("first optimizer step %.2f s after this process started", time.time() - psutil.Process().create_time())


def step_boundary(run, state: TrainState, running, guard: NanGuard, mid_epoch: bool) -> None:
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
    guard.checked(running)  # no checkpoint after a non-finite loss
    state.epoch_loss_sum = run.accelerator.reduce(running, reduction="mean").item()
    guard.last_checkpoint = save(run, state)
    if signum:
        raise TrainingInterrupted(signum, state.step, guard.last_checkpoint, run.work_dir)


def evaluate(run, desc: str) -> dict:
    predictions = predict(
        run.eval_model,
        run.val_loader,
        run.inputs,
        accelerator=run.accelerator,
        skip_bad_images=run.recipe.data.skip_bad_images,
        desc=desc,
    )
    return validation_metrics(predictions, run.recipe.evaluation.topk)


def save(run, state: TrainState, row: dict | None = None) -> Path:
    """Checkpoint the run (`row`: the epoch's metrics.jsonl row, which resume restores), prune; return the folder."""
    accelerator = run.accelerator
    # Mid-epoch, where the loader stands; at an epoch's end the next epoch starts afresh.
    saved = dataclasses.replace(
        state,
        has_optimizer=run.recipe.checkpoint.save_optimizer,
        row=row or {},
        loader=run.train_loader.state_dict() if state.batch_in_epoch else {},
    )
    folder = checkpoint.save(
        checkpoint_folder(run.work_dir, state),
        saved,
        accelerator,
        run.model,
        run.processor,
        scheduler_state=run.scheduler.state_dict(),
        ema_state=run.ema.state_dict() if run.ema is not None else None,
        whole=whole_state_dict(accelerator, run.model),
    )  # FSDP: Accelerate's files hold shards
    if accelerator.is_main_process:
        prune_checkpoints(run.work_dir, run.recipe.checkpoint.max_keep, state.best_epoch)
    accelerator.wait_for_everyone()
    return folder


def export_epoch(run, metrics: dict, state: TrainState) -> None:
    """latest/ after every evaluation; best/ when evaluation.save_best improved."""
    latest = run.work_dir / "latest"
    export(run, latest, weights_record(state.epoch, state.step, metrics))
    key, rule = run.recipe.evaluation.save_best, run.recipe.evaluation.rule
    if key is None:
        return
    key = best_metric_key(key, metrics)
    if key not in metrics:
        raise HfclsError(f"evaluation.save_best: no metric {key!r}; metrics are {', '.join(metrics)}")
    value = metrics[key]
    better = state.best_metric is None or (
        value > state.best_metric if rule == "greater" else value < state.best_metric
    )
    if better:
        state.best_metric, state.best_epoch = value, state.epoch
        if run.accelerator.is_main_process:  # the weights latest/ has just been given
            copy_hf_folder(latest, run.work_dir / "best")
        logger.info("new best %s %.4f at epoch %d", key, value, state.epoch)


def export(run, folder: Path, record: dict) -> None:
    """The evaluated model into `folder`, with its training record (epoch, step, metrics)."""
    model, whole = evaluated_model(run)
    if run.accelerator.is_main_process:
        save_hf_folder(model, run.processor, folder, whole, record)
    run.accelerator.wait_for_everyone()


def evaluated_model(run) -> tuple:
    """The model evaluated (the EMA when enabled), unwrapped, as every export receives it (a LoRA model
    merged into a plain one), and its whole state dict where FSDP shards it (on the main process; None
    otherwise). Every process calls it: gathering the shards is collective."""
    whole = whole_state_dict(run.accelerator, run.eval_model)
    return merged(run.accelerator.unwrap_model(run.eval_model, keep_torch_compile=False)), whole


def record(run, row: dict) -> None:
    logger.info(
        "epoch %d: %s",
        row["epoch"],
        ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k != "epoch"),
    )
    run.accelerator.log({k: v for k, v in row.items() if k not in ("epoch", "step")}, step=row["step"])
    if run.accelerator.is_main_process:
        append_row(run.work_dir, row)
