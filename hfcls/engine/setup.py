"""Everything a training run holds, built from the recipe on one Accelerator.

Training (`hfcls.engine.loop`), evaluation and hfcls-bench all start here, so
the model, optimizer, loaders and precision they use are the same.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import (
    DataLoaderConfiguration,
    DynamoBackend,
    InitProcessGroupKwargs,
    ProjectConfiguration,
    set_seed,
)
from tqdm.auto import tqdm

from hfcls.artifacts.export import check_exportable, image_processor
from hfcls.artifacts.finetune import load_finetune_weights
from hfcls.data.balance import class_counts
from hfcls.data.build import (
    build_datasets,
    build_eval_loader,
    build_train_loader,
    check_labelled,
    class_names,
    for_problem,
    problem_type_of,
)
from hfcls.engine.adapt import enable_gradient_checkpointing, freeze, one_pixel_convs, relu_in_place
from hfcls.engine.dist import check_launch, cpu_only_processes, is_sharded, lost_processes_explained
from hfcls.engine.distillation import Teacher, build_teacher
from hfcls.engine.ema import ModelEma
from hfcls.engine.host_memory import keep_freed_memory
from hfcls.engine.losses import build_loss
from hfcls.engine.optim import build_optimizer, build_scheduler
from hfcls.engine.precision import check_mixed_precision, default_device_type
from hfcls.engine.signals import StopRequest
from hfcls.engine.trackers import installed_trackers
from hfcls.errors import HfclsError, did_you_mean
from hfcls.modeling.lora import add_lora
from hfcls.models import build_model
from hfcls.predict.inputs import ModelInputs, recipe_inputs

logger = logging.getLogger(__name__)


def make_accelerator(recipe, work_dir: Path | None = None) -> Accelerator:
    """The recipe's Accelerator; with a `work_dir`, one for training (trackers, compile)."""
    check_mixed_precision(recipe.train.mixed_precision, default_device_type())
    training = work_dir is not None
    accelerator = Accelerator(
        cpu=cpu_only_processes(),  # several processes without GPUs: one gloo group
        mixed_precision=recipe.train.mixed_precision,
        gradient_accumulation_steps=recipe.train.gradient_accumulation_steps,
        # A sampler seeded from the recipe shuffles the same way on every rank and
        # replays exactly on resume; batches from pinned memory are copied without blocking.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=recipe.seed, non_blocking=True),
        project_config=ProjectConfiguration(project_dir=str(work_dir), logging_dir=str(work_dir / "tensorboard"))
        if training
        else None,
        log_with=(installed_trackers(recipe.train.log_with) or None) if training else None,
        dynamo_backend=compile_backend(recipe.train) if training and recipe.train.compile else None,
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(minutes=recipe.dist.timeout_minutes))],
    )
    check_launch(accelerator)
    return accelerator


def compile_backend(train_section) -> str:
    known = [backend.value.lower() for backend in DynamoBackend if backend != DynamoBackend.NO]
    backend = train_section.compile_backend.lower()
    if backend not in known:
        raise HfclsError(
            f"train.compile_backend: unknown backend {train_section.compile_backend!r}"
            f"{did_you_mean(backend, known)}; torch.compile knows {', '.join(known)}"
        )
    return backend


@contextmanager
def accelerator_session(recipe, work_dir: Path | None = None):
    """An Accelerator for the length of the block, its process group ended after. On CPU, the process
    keeps the memory its steps free for the next ones (hfcls.engine.host_memory)."""
    accelerator = make_accelerator(recipe, work_dir)
    if accelerator.device.type == "cpu":
        keep_freed_memory()
    try:
        with lost_processes_explained(recipe.dist.timeout_minutes):  # while the process group still exists
            yield accelerator
    finally:
        accelerator.end_training()
        # Accelerate keeps its settings (mixed precision, compile) for the whole process;
        # forget them so the next session in this process can choose its own.
        AcceleratorState._reset_state(reset_partial_state=True)


@dataclass
class Run:
    """Everything one training run holds, prepared by Accelerate."""

    recipe: object
    work_dir: Path
    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    train_loader: object  # the loader protocol of hfcls.data.build
    val_loader: object | None
    inputs: ModelInputs  # uint8 batches -> the model's inputs, and the autocast validation runs under
    ema: ModelEma | None
    class_names: list
    stop: StopRequest
    total_steps: int
    loss: object  # hfcls.engine.losses.TrainingLoss: (logits, labels, valid) -> the batch's loss
    started: tuple = (0.0, 0)  # (time, step) when this process started training
    teacher: Teacher | None = None  # train.distill's (hfcls.engine.distillation)

    def eta(self, step: int, now: float | None = None) -> str:
        """Time left for the whole run, from the pace since this process started."""
        start_time, start_step = self.started
        if step <= start_step:
            return "?"
        now = time.perf_counter() if now is None else now
        pace = (now - start_time) / (step - start_step)
        return tqdm.format_interval(pace * (self.total_steps - step))

    @property
    def processor(self):
        """The exported preprocessor, equal to the eval pipeline. Built when an export needs it:
        transformers' image processing takes seconds to import, which the first step need not wait for."""
        return image_processor(self.recipe.data)

    @property
    def eval_model(self):
        """The model that is evaluated and exported: the EMA when enabled."""
        return self.ema.module if self.ema is not None else self.model


def build_run(
    recipe, work_dir: Path, accelerator: Accelerator, *, validate: bool = True, load_from: str | None = None
) -> Run:
    if not recipe.data.eval_pipeline:  # now, not at the first export
        raise HfclsError(
            "data.eval_pipeline is empty, but training exports its model with the eval "
            "preprocessing: set [Resize] or [Resize, CenterCrop]"
        )
    set_seed(recipe.seed, deterministic=recipe.train.deterministic)  # identical model init on every rank
    dsets = load_datasets(recipe, accelerator, validate)
    problem_type = recipe.model.problem_type or problem_type_of(dsets["train"])
    dsets = {split: for_problem(ds, problem_type, f"data.{split}") for split, ds in dsets.items()}
    names = class_names(dsets["train"])
    counts = class_counts(dsets["train"]) if recipe.train.class_weights == "balanced" else None
    loss = build_loss(recipe.train, problem_type, counts, names)  # before the model: the type may not fit the data
    model = build_model(recipe.model, names, problem_type)
    check_exportable(model, recipe.data)
    if load_from is not None:
        load_finetune_weights(model, load_from)
    freeze(model, recipe.optim)
    check_sides(model, recipe.data.progressive_resizing)
    if recipe.model.lora is not None:
        model = lora_model(model, recipe.model.lora, accelerator)
    model = adapt_model(model, recipe.train, accelerator.num_processes, accelerator.device.type)
    ema = build_ema(model, recipe.train.ema, accelerator)
    teacher = None
    if recipe.train.distill is not None:  # building it may draw random numbers: before the seed below
        with accelerator.main_process_first():  # a Hub id is downloaded once
            teacher = build_teacher(recipe.train.distill, names, problem_type, recipe, accelerator.device)
    set_seed(recipe.seed, device_specific=True)  # model randomness (dropout) differs between ranks
    optimizer = build_optimizer(model, scaled_optim(recipe, accelerator))
    model, optimizer = prepare_model(accelerator, model, optimizer)
    train_loader = build_train_loader(recipe, dsets["train"], accelerator)
    val_loader = build_eval_loader(recipe.data, dsets["val"], accelerator, recipe.seed) if validate else None
    per_epoch = steps_per_epoch(recipe, train_loader)
    if per_epoch == 0:  # a map-style split smaller than one global batch (training drops the last, partial one)
        raise HfclsError(
            f"the {len(dsets['train'])} training images make no full batch of data.batch_size "
            f"{recipe.data.batch_size} x {accelerator.num_processes} process(es); lower data.batch_size"
        )
    # Stepped by hand once per optimizer step, so not prepared; saved by name in checkpoints.
    scheduler = build_scheduler(optimizer, recipe.schedule, recipe.train.epochs, per_epoch)
    inputs = recipe_inputs(recipe, accelerator.device)
    log_sizes(recipe, accelerator, dsets, names, per_epoch)
    return Run(
        recipe,
        work_dir,
        accelerator,
        model,
        optimizer,
        scheduler,
        train_loader,
        val_loader,
        inputs,
        ema,
        names,
        StopRequest(),
        recipe.train.epochs * per_epoch,
        loss,
        teacher=teacher,
    )


def check_sides(model, schedule: list | None) -> None:
    """Refuse, before training, a model that cannot take every side of data.progressive_resizing (a ViT's
    position embeddings fix its input size): one image of each side through it, without gradients."""
    if schedule is None:
        return
    training = model.training
    model.eval()
    try:
        for side in sorted({side for _, side in schedule}):
            with torch.no_grad():
                model(pixel_values=torch.zeros(1, 3, side, side))
    except (RuntimeError, ValueError) as error:
        raise HfclsError(
            f"data.progressive_resizing: {model.config.model_type} cannot take {side} x {side} images "
            f"({str(error).splitlines()[0]}); train it at one size (data.progressive_resizing=null) or pick a "
            "model that takes any size (a CNN)"
        ) from None
    finally:
        model.train(training)


def build_ema(model, settings: dict | None, accelerator) -> ModelEma | None:
    """The moving average of train.ema (its settings finished by the recipe), on the training device."""
    if settings is None:
        return None
    if is_sharded(accelerator):
        # ModelEma averages whole parameters; FSDP holds a shard of each on every process.
        raise HfclsError(
            "train.ema does not work with a sharded model (FSDP): set train.ema=null, or train "
            "with plain data parallel (launch/accelerate/one_node.yaml)"
        )
    ema = ModelEma(model, **settings)
    ema.module.to(accelerator.device)
    return ema


def lora_model(model, settings: dict, accelerator):
    """model.lora's adapters on `model` (its finished settings), on a model that is not sharded."""
    if is_sharded(accelerator):
        # The export merges the adapters into whole weights, which FSDP holds a shard of on each process.
        raise HfclsError(
            "model.lora does not work with a sharded model (FSDP): LoRA's optimizer state is small anyway; "
            "train with plain data parallel (launch/accelerate/one_node.yaml)"
        )
    return add_lora(model, settings)


def prepare_model(accelerator, model, optimizer):
    try:
        return accelerator.prepare(model, optimizer)
    except (ValueError, NotImplementedError) as error:
        if not is_sharded(accelerator):
            raise
        # Accelerate's FSDP wraps the block class the launch config names (fsdp_transformer_layer_cls_to_wrap),
        # and FSDP2 asks every model for its input embeddings, which transformers' CNNs do not have.
        raise HfclsError(
            f"{accelerator.distributed_type.value} cannot wrap {model.config.model_type} with this "
            f"launch config ({str(error).splitlines()[0]}); name the model's block class in "
            "fsdp_transformer_layer_cls_to_wrap, or train it with plain data parallel "
            "(launch/accelerate/one_node.yaml)"
        ) from None


def log_sizes(recipe, accelerator, dsets, names, per_epoch) -> None:
    sizes = {split: len(ds) if hasattr(ds, "__len__") else "streamed" for split, ds in dsets.items()}
    logger.info(
        "%s train / %s val images, %d classes; batch %d x %d processes x %d accumulation = %d; %d steps per epoch",
        sizes["train"],
        sizes.get("val", "no"),
        len(names),
        recipe.data.batch_size,
        accelerator.num_processes,
        recipe.train.gradient_accumulation_steps,
        total_batch_size(recipe, accelerator),
        per_epoch,
    )


def load_datasets(recipe, accelerator, validate):
    splits = ("train", "val") if validate else ("train",)
    with accelerator.main_process_first():  # the main process fills the datasets cache
        dsets = build_datasets(recipe.data, recipe.seed, splits)
    if "train" not in dsets:
        raise HfclsError("the recipe has no data.train source to train on")
    if validate and "val" not in dsets:
        raise HfclsError("no validation data: set data.val, data.train_val_split, or pass --no-validate")
    for split, ds in dsets.items():
        check_labelled(ds, f"data.{split}", "training and validation need a label for every image")
    names = class_names(dsets["train"])
    if len(names) < 2:
        raise HfclsError(
            f"data.train has {len(names)} class ({', '.join(names)}); a classifier learns to tell at least 2 apart"
        )
    return dsets


def adapt_model(model, train_section, num_processes: int, device_type: str):
    """train.gradient_checkpointing, train.sync_bn (several processes only), train.channels_last; ReLUs
    in place where the architecture allows (hfcls.engine.adapt.relu_in_place); on CPU, one-pixel
    convolution outputs as matrix products (hfcls.engine.adapt.one_pixel_convs; measured on CPU only)."""
    relu_in_place(model)
    if device_type == "cpu":
        one_pixel_convs(model)
    if train_section.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    if train_section.sync_bn and num_processes > 1:
        if device_type == "cpu":  # torch's SyncBatchNorm would fail at the first training step
            raise HfclsError(
                "train.sync_bn needs GPUs: torch's SyncBatchNorm does not run on CPU; "
                "set train.sync_bn=false for this CPU run"
            )
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
    logger.info(
        "auto_scale_lr: lr %g x total batch %d / base batch %d = %g",
        recipe.optim.lr,
        total,
        scale["base_batch_size"],
        lr,
    )
    return dataclasses.replace(recipe.optim, lr=lr)


def steps_per_epoch(recipe, train_loader) -> int:
    return math.ceil(len(train_loader) / recipe.train.gradient_accumulation_steps)
