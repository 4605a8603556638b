"""YAML recipes: `_base_` inheritance, dotted overrides, typed validation.

A recipe file is plain YAML. `_base_: [a.yaml, b.yaml]` lists files (relative to
the recipe) that are deep-merged in order, the recipe itself last; a mapping
holding `_delete_: true` replaces what it inherits instead of merging into it.
Command-line overrides `key.sub=value` are YAML-typed and applied last. The
merged mapping is then checked against the dataclasses below: unknown keys and
wrong types are errors that name the key.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from hfcls.errors import HfclsError, did_you_mean

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


# ----------------------------------------------------------------------------- sections


@dataclass
class DataSection:
    # Each source is a mapping with a `type` (imagefolder, hub, ...) and that
    # source's own keys; hfcls.data.sources checks them.
    train: Optional[dict] = None
    val: Optional[dict] = None
    test: Optional[dict] = None
    # Fraction of `train` held out (stratified, seeded) when there is no `val` source.
    train_val_split: Optional[float] = None
    batch_size: int = 32  # per process; the total is batch_size x processes
    eval_batch_size: Optional[int] = None  # defaults to batch_size
    num_workers: Optional[int] = None  # None: one per CPU core of this process, at most 8
    persistent_workers: bool = True
    prefetch_factor: int = 2
    pin_memory: bool = True  # used only on CUDA
    skip_bad_images: bool = False
    # Decode each split once into one uint8 tensor on the training device and
    # augment whole batches there (hfcls.data.in_memory): small data sets only.
    in_memory: bool = False
    # Where images are decoded and augmented: in the DataLoader workers (workers), or in the
    # training process, a whole batch at a time on the GPU (cuda: nvJPEG) or on the CPU (cpu:
    # the same code); then the workers only read the files (hfcls.data.on_device).
    decode: Literal["workers", "cuda", "cpu"] = "workers"
    to_rgb: bool = True  # grayscale and RGBA images become 3-channel RGB
    # Normalisation on the 0-1 scale (torchvision's), applied on the training device.
    mean: list = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list = field(default_factory=lambda: list(IMAGENET_STD))
    # torchvision.transforms.v2 classes by name, applied to uint8 images.
    train_pipeline: list = field(default_factory=list)
    eval_pipeline: list = field(default_factory=list)
    # A streaming train source (streaming: true) has no length: steps per epoch,
    # and how many rows its shuffle buffer holds.
    steps_per_epoch: Optional[int] = None
    shuffle_buffer: int = 1000


@dataclass
class ModelSection:
    pretrained: Optional[str] = None  # a Hub id or a local Hugging Face folder
    config: Optional[dict] = None  # {model_type: ..., **config kwargs}, random init
    ignore_mismatched_sizes: bool = True  # a new head for another class count


@dataclass
class OptimSection:
    type: Literal["sgd", "adamw", "adam"] = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    # Weight decay on normalisation and bias parameters. Unset: on for SGD (as
    # MMClassification's ResNet recipes do), off for Adam/AdamW.
    decay_norm_and_bias: Optional[bool] = None
    # Parameter-name prefixes left out of training (MMClassification's frozen_stages),
    # e.g. [resnet.embedder., resnet.encoder.stages.0.].
    frozen: list = field(default_factory=list)
    # LR multipliers by parameter-name prefix (paramwise_cfg's lr_mult), e.g. {resnet.: 0.1}
    # for a backbone at a tenth of the head's LR; the longest matching prefix wins.
    lr_mult: dict = field(default_factory=dict)


@dataclass
class ScheduleSection:
    # Any name transformers.get_scheduler knows (cosine, linear, constant, ...)
    # or "step": multiply the LR by `gamma` at each epoch listed in `steps`.
    type: str = "cosine"
    steps: list = field(default_factory=list)
    gamma: float = 0.1
    warmup_steps: int = 0
    warmup_epochs: float = 0.0
    scheduler_kwargs: dict = field(default_factory=dict)  # e.g. {min_lr: 1e-5}


@dataclass
class TrainSection:
    epochs: int = 10
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    gradient_accumulation_steps: int = 1
    clip_grad_norm: Optional[float] = None
    label_smoothing: float = 0.0
    log_interval: int = 20  # steps between loss readings (each one syncs the device)
    channels_last: bool = False
    mixup_alpha: float = 0.0  # > 0: torchvision v2 MixUp on each training batch
    cutmix_alpha: float = 0.0  # > 0: CutMix (with both set, one of the two per batch)
    ema: Optional[dict] = None  # {decay: 0.9998, every_n_steps: 1}: evaluate and export the average
    compile: bool = False  # torch.compile the model
    compile_backend: str = "inductor"  # torch.compile's backend (eager: graph capture only, no code generation)
    auto_scale_lr: Optional[dict] = None  # {base_batch_size: 256}: lr x real total batch / base
    sync_bn: bool = False  # BatchNorm -> SyncBatchNorm with several processes
    deterministic: bool = False  # deterministic algorithms (slower on GPU)
    # Non-finite losses tolerated (step skipped) before stopping. 0 checks the losses at log
    # intervals, without a sync per step; > 0 reads every loss back to decide on its step.
    max_bad_steps: int = 0
    # Accelerate trackers ([tensorboard], [wandb], ...); unset: tensorboard when installed, []: none.
    log_with: Optional[list] = None
    # At the end of a run: <work_dir>/publish/<name>-<sha256[:8]>.safetensors and a
    # Hugging Face folder beside it (hfcls.artifacts.publish), then optionally a push to this Hub repo id.
    publish: bool = True
    push_to_hub: Optional[str] = None


@dataclass
class EvaluationSection:
    interval: int = 1  # epochs
    topk: list = field(default_factory=lambda: [1, 5])
    save_best: Optional[str] = "accuracy_top1"  # metric that decides best/
    rule: Literal["greater", "less"] = "greater"


@dataclass
class CheckpointSection:
    interval: int = 1  # epochs
    interval_steps: Optional[int] = None  # also every N optimizer steps, resumable mid-epoch
    max_keep: Optional[int] = None  # newest N kept (and the best epoch's)
    save_optimizer: bool = True  # false: smaller checkpoints; a resume restarts the optimizer


@dataclass
class DistSection:
    port: Optional[int] = None
    timeout_minutes: float = 30.0


@dataclass
class Recipe:
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimSection = field(default_factory=OptimSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    train: TrainSection = field(default_factory=TrainSection)
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    dist: DistSection = field(default_factory=DistSection)
    work_dir: Optional[str] = None
    # Python modules imported when the recipe loads, e.g. one that registers your own
    # architecture with the transformers Auto classes (docs/tutorials/new_modules.md).
    custom_imports: list = field(default_factory=list)
    seed: int = 0
    # Where the recipe came from, for messages; not a recipe key.
    source: Optional[str] = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        raw = dataclasses.asdict(self)
        raw.pop("source")
        return raw


# ----------------------------------------------------------------------------- loading


def load_recipe(path, overrides=()) -> Recipe:
    """Read a recipe file, merge its bases, apply `key.sub=value` overrides, validate."""
    raw = _load_with_bases(Path(path), chain=())
    for override in overrides:
        apply_override(raw, override)
    recipe = recipe_from_dict(raw, where=str(path))
    recipe.source = str(path)
    return recipe


def recipe_from_dict(raw: dict, where="recipe") -> Recipe:
    recipe = _build(Recipe, raw, prefix="", where=where)
    _check_semantics(recipe, where)
    import_custom_modules(recipe.custom_imports, where)
    return recipe


def import_custom_modules(names: list, where: str) -> None:
    """Import each module by name, from the Python path or the current directory."""
    if names and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # last: a user's file never shadows an installed package
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise HfclsError(f"{where}: custom_imports: cannot import {name} ({error}); run from the folder "
                             "that holds it or add that folder to PYTHONPATH") from None


def save_recipe(recipe: Recipe, path) -> None:
    """Write the resolved recipe; `hfcls-train` can rerun from this file alone."""
    Path(path).write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise HfclsError(f"recipe file {path} does not exist; check the path")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise HfclsError(f"{path}:{line} invalid YAML ({problem}); fix the syntax there") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HfclsError(f"{path}: a recipe must be a YAML mapping of sections, got {type(data).__name__}")
    return data


def _load_with_bases(path: Path, chain: tuple) -> dict:
    path = path.resolve()
    if path in chain:
        raise HfclsError(f"{path}: _base_ files include each other in a cycle: {' -> '.join(map(str, chain))}")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    merged: dict = {}
    for base in bases:
        base_path = path.parent / base
        if not base_path.is_file():
            raise HfclsError(f"{path}: _base_ file {base} not found (looked for {base_path})")
        merged = deep_merge(merged, _load_with_bases(base_path, chain + (path,)))
    return deep_merge(merged, data)


def deep_merge(base: dict, update: dict) -> dict:
    """Merge `update` into a copy of `base`: mappings recursively, anything else replaced."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict):
            value = dict(value)
            replace = value.pop("_delete_", False)
            if not replace and isinstance(out.get(key), dict):
                value = deep_merge(out[key], value)
        out[key] = value
    return out


def apply_override(raw: dict, override: str) -> None:
    """Apply `a.b.c=value` (YAML-typed; list items by index: `a.0.b=1`) in place."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise HfclsError(f'override "{override}" must look like key.sub=value')
    try:
        value = yaml.safe_load(text) if text != "" else ""
    except yaml.YAMLError:
        raise HfclsError(f'override "{override}": the value is not valid YAML; quote it') from None
    parts = key.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        child = _child(node, part, key)
        if child is None:
            child = {}
            _set(node, part, child, key)
        elif not isinstance(child, (dict, list)):
            raise HfclsError(f'override "{override}": {".".join(parts[: i + 1])} is a value, not a section')
        node = child
    _set(node, parts[-1], value, key)


def _child(node, part, key):
    if isinstance(node, list):
        return node[_index(node, part, key)]
    return node.get(part)


def _set(node, part, value, key):
    if isinstance(node, list):
        node[_index(node, part, key)] = value
    else:
        node[part] = value


def _index(node: list, part: str, key: str) -> int:
    if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
        raise HfclsError(f'override key {key}: "{part}" is not an index of a list of {len(node)} items')
    return int(part)


# ----------------------------------------------------------------------------- validation


def _build(cls, raw, prefix: str, where: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise HfclsError(f"{where}: {prefix.rstrip('.') or 'recipe'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    for key in raw:
        if key not in fields:
            raise HfclsError(
                f"{where}: unknown key {prefix}{key}{did_you_mean(key, fields)}; "
                f"known keys here: {', '.join(fields)}"
            )
    values = {}
    for name in raw:
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = _build(hint, raw[name], f"{prefix}{name}.", where)
        else:
            values[name] = _check_type(raw[name], hint, f"{prefix}{name}", where)
    return cls(**values)


def _check_type(value, hint, key: str, where: str):
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(o for o in options if o is not type(None))
        return _check_type(value, hint, key, where)
    if origin is Literal:
        choices = typing.get_args(hint)
        # YAML reads a bare `no` as False; mixed_precision: no means "no".
        if value is False and "no" in choices:
            value = "no"
        if value not in choices:
            raise HfclsError(
                f"{where}: {key} must be one of {', '.join(map(str, choices))}, got {value!r}"
                f"{did_you_mean(value, choices)}"
            )
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML 1.1 reads 1e-3 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    expected = {int: int, float: float, bool: bool, str: str, list: list, dict: dict}[hint]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise HfclsError(f"{where}: {key} must be {expected.__name__}, got {value!r}")
    return value


def _check_semantics(recipe: Recipe, where: str) -> None:
    data, model = recipe.data, recipe.model
    for name in ("mean", "std"):
        values = getattr(data, name)
        if len(values) != 3 or not all(isinstance(v, (int, float)) for v in values):
            raise HfclsError(f"{where}: data.{name} must be a list of 3 numbers, got {values!r}")
        if max(values) > 1.0:
            raise HfclsError(
                f"{where}: data.{name} {values} looks like the 0-255 scale; hfcls uses 0-1 "
                f"(divide by 255, e.g. 123.675 -> 0.485)"
            )
    if data.train_val_split is not None and not 0 < data.train_val_split < 1:
        raise HfclsError(f"{where}: data.train_val_split must be a fraction between 0 and 1")
    if data.in_memory and data.decode != "workers":
        raise HfclsError(f"{where}: data.in_memory decodes each split once itself; leave data.decode at workers "
                         "or set data.in_memory=false")
    if data.train_val_split is not None and data.val is not None:
        raise HfclsError(f"{where}: set either data.val or data.train_val_split, not both")
    if model.pretrained is None and model.config is None:
        raise HfclsError(f"{where}: set model.pretrained (Hub id or folder) or model.config (model_type: ...)")
    if model.pretrained is not None and model.config is not None:
        raise HfclsError(
            f"{where}: set model.pretrained or model.config, not both (override one with =null)"
        )
    if model.config is not None and "model_type" not in model.config:
        raise HfclsError(f"{where}: model.config needs a model_type (e.g. resnet, vit, convnext)")
    positives = {
        "data.batch_size": data.batch_size,
        "train.epochs": recipe.train.epochs,
        "train.gradient_accumulation_steps": recipe.train.gradient_accumulation_steps,
        "train.log_interval": recipe.train.log_interval,
        "evaluation.interval": recipe.evaluation.interval,
        "checkpoint.interval": recipe.checkpoint.interval,
    }
    for key, value in (("checkpoint.interval_steps", recipe.checkpoint.interval_steps),
                       ("checkpoint.max_keep", recipe.checkpoint.max_keep)):
        if value is not None:
            positives[key] = value
    for key, value in positives.items():
        if value < 1:
            raise HfclsError(f"{where}: {key} must be at least 1, got {value}")
    for key in ("mixup_alpha", "cutmix_alpha", "max_bad_steps", "label_smoothing"):
        if getattr(recipe.train, key) < 0:
            raise HfclsError(f"{where}: train.{key} must be 0 or more")
    scale = recipe.train.auto_scale_lr
    if scale is not None and (set(scale) != {"base_batch_size"} or not isinstance(scale["base_batch_size"], int)
                              or scale["base_batch_size"] < 1):
        raise HfclsError(f"{where}: train.auto_scale_lr must be {{base_batch_size: N}} with N >= 1, got {scale!r}")
    if data.steps_per_epoch is not None and data.steps_per_epoch < 1:
        raise HfclsError(f"{where}: data.steps_per_epoch must be at least 1, got {data.steps_per_epoch}")
    if data.shuffle_buffer < 1:
        raise HfclsError(f"{where}: data.shuffle_buffer must be at least 1, got {data.shuffle_buffer}")
    optim = recipe.optim
    if not all(isinstance(p, str) for p in optim.frozen):
        raise HfclsError(f"{where}: optim.frozen must be a list of parameter-name prefixes, got {optim.frozen!r}")
    for prefix, mult in optim.lr_mult.items():
        if not isinstance(mult, (int, float)) or isinstance(mult, bool) or mult < 0:
            raise HfclsError(f"{where}: optim.lr_mult.{prefix} must be a number >= 0, got {mult!r}")
    if data.num_workers is not None and data.num_workers < 0:
        raise HfclsError(f"{where}: data.num_workers must be 0 or more")
    if recipe.train.push_to_hub and not recipe.train.publish:
        raise HfclsError(f"{where}: train.push_to_hub uploads the published model; set train.publish=true too")
