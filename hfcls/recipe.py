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
import math
import numbers
import os
import sys
import traceback
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from hfcls.errors import HfclsError, did_you_mean
from hfcls.files import write_atomic

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
    # Images with more pixels are refused before they are decoded (as undecodable ones are,
    # so skip_bad_images skips them); the default is Pillow's own MAX_IMAGE_PIXELS.
    max_image_pixels: int = 89_478_485
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
    # class_balanced: each epoch draws its images with replacement, rare classes more often
    # (hfcls.data.balance): in inverse proportion to their frequency, or with oversample_thr: t
    # by MMClassification's ClassBalancedDataset rule r(c) = max(1, sqrt(t / f(c))).
    sampler: Optional[Literal["class_balanced"]] = None
    oversample_thr: Optional[float] = None


@dataclass
class ModelSection:
    pretrained: Optional[str] = None  # a Hub id or a local Hugging Face folder
    config: Optional[dict] = None  # {model_type: ..., **config kwargs}, random init
    ignore_mismatched_sizes: bool = True  # a new head for another class count
    # true: let transformers import and run the Python files of a model folder or Hub repo whose
    # config.json has an auto_map (custom code). Off, such a model is refused with one line;
    # turn it on only for a model whose author you trust, as it runs their code on this machine.
    trust_remote_code: bool = False
    # Unset: multi_label_classification when the labels are lists of classes, else single-label.
    problem_type: Optional[Literal["single_label_classification", "multi_label_classification"]] = None


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
    label_smoothing: float = 0.0  # also on multi-hot targets: each class's 0/1 target moves eps/2 inward
    # {type: cross_entropy | bce | asl | focal, ...its options} (hfcls.engine.losses); unset:
    # cross-entropy for single-label data, BCE-with-logits for multi-label data.
    loss: Optional[dict] = None
    # Per-class loss weights: balanced (n / (classes x images of the class), as scikit-learn's
    # compute_class_weight) or a list of one number per class.
    class_weights: Union[str, list, None] = None
    log_interval: int = 20  # steps between loss readings (each one syncs the device)
    channels_last: bool = False
    mixup_alpha: float = 0.0  # > 0: torchvision v2 MixUp on each training batch
    cutmix_alpha: float = 0.0  # > 0: CutMix (with both set, one of the two per batch)
    ema: Optional[dict] = None  # {decay: 0.9998, every_n_steps: 1}: evaluate and export the average (EMA_DEFAULTS)
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
    license: Optional[str] = None  # the model card's license, a Hub license id (apache-2.0, mit, ...)


@dataclass
class EvaluationSection:
    interval: int = 1  # epochs
    topk: list = field(default_factory=lambda: [1, 5])
    # The metric that decides best/; auto: mAP for a multi-label model, else accuracy_top1.
    save_best: Optional[str] = "auto"
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


# train.ema's keys (hfcls.engine.ema): warm-up as timm's ModelEmaV3 does it.
EMA_DEFAULTS = {"decay": 0.9998, "every_n_steps": 1, "warmup": True, "warmup_power": 2 / 3}

# The values every number of a recipe may take, as intervals; a list's items and a
# mapping's values each obey the range of their key. tests/test_recipe.py fails when
# a numeric key is missing here.
RANGES = {
    "seed": "[0, 4294967295]",  # NumPy's seeds are 32-bit
    "data.train_val_split": "(0, 1)",
    "data.batch_size": "[1, inf)",
    "data.eval_batch_size": "[1, inf)",
    "data.num_workers": "[0, inf)",
    "data.prefetch_factor": "[1, inf)",
    "data.max_image_pixels": "[1, inf)",
    "data.mean": "[0, 1]",
    "data.std": "(0, 1]",
    "data.steps_per_epoch": "[1, inf)",
    "data.shuffle_buffer": "[1, inf)",
    "data.oversample_thr": "(0, 1]",
    "optim.lr": "[0, inf)",  # 0: nothing moves but the BatchNorm statistics
    "optim.momentum": "[0, 1)",
    "optim.weight_decay": "[0, inf)",
    "optim.betas": "[0, 1)",
    "optim.eps": "(0, inf)",
    "optim.lr_mult": "[0, inf)",
    "schedule.steps": "[1, inf)",
    "schedule.gamma": "(0, inf)",
    "schedule.warmup_steps": "[0, inf)",
    "schedule.warmup_epochs": "[0, inf)",
    "train.epochs": "[1, inf)",
    "train.gradient_accumulation_steps": "[1, inf)",
    "train.clip_grad_norm": "(0, inf)",
    "train.label_smoothing": "[0, 1)",
    "train.log_interval": "[1, inf)",
    "train.mixup_alpha": "[0, inf)",
    "train.cutmix_alpha": "[0, inf)",
    "train.ema.decay": "(0, 1)",
    "train.ema.every_n_steps": "[1, inf)",
    "train.ema.warmup_power": "(0, inf)",
    "train.auto_scale_lr.base_batch_size": "[1, inf)",
    "train.max_bad_steps": "[0, inf)",
    "evaluation.interval": "[1, inf)",
    "evaluation.topk": "[1, inf)",
    "checkpoint.interval": "[1, inf)",
    "checkpoint.interval_steps": "[1, inf)",
    "checkpoint.max_keep": "[1, inf)",
    "dist.port": "[1, 65535]",
    "dist.timeout_minutes": "(0, inf)",
}
# Lists of numbers: (item type, item count or None for any).
NUMBER_LISTS = {"data.mean": (float, 3), "data.std": (float, 3), "optim.betas": (float, 2),
                "schedule.steps": (int, None), "evaluation.topk": (int, None)}
# Keys of the v2 transforms in data.*_pipeline whose numbers hfcls checks with the recipe.
TRANSFORM_RANGES = {"size": "[1, inf)", "max_size": "[1, inf)", "padding": "[0, inf)", "p": "[0, 1]"}
# A recipe holds a few hundred values; YAML aliases could make it hold billions.
MAX_RECIPE_VALUES = 100_000


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
        if not isinstance(name, str) or not name:
            raise HfclsError(f"{where}: custom_imports must list module names (strings), got {name!r}")
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise HfclsError(f"{where}: custom_imports: cannot import {name} ({error}); run from the folder "
                             "that holds it or add that folder to PYTHONPATH") from None
        except Exception as error:  # the module's own code failed: say where, in one line
            raise HfclsError(f"{where}: custom_imports: importing {name} raised {type(error).__name__}: "
                             f"{error}{_raised_at(error)}; fix that module") from None


def _raised_at(error: Exception) -> str:
    if isinstance(error, SyntaxError):  # its message already names the file and line
        return ""
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return f" ({frame.filename}, line {frame.lineno})"


def recipe_yaml(recipe: Recipe) -> str:
    """The resolved recipe (bases merged, overrides applied) as YAML: `hfcls-train` can rerun from it alone."""
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False)


def save_recipe(recipe: Recipe, path) -> None:
    """Write the resolved recipe; `hfcls-train` can rerun from this file alone."""
    write_atomic(path, recipe_yaml(recipe))


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise HfclsError(f"recipe file {path} does not exist; check the path")
    data = _parse_yaml(path.read_bytes(), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HfclsError(f"{path}: a recipe must be a YAML mapping of sections, got {type(data).__name__}")
    return data


def _parse_yaml(text, where: str):
    """YAML text -> Python values, refusing what would not fit in memory once expanded."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise HfclsError(f"{where}:{line} invalid YAML ({problem}); fix the syntax there") from None
    except RecursionError:
        raise HfclsError(f"{where}: the YAML is nested too deeply to read; a recipe nests a few levels") from None
    check_expanded_size(data, where)
    return data


def check_expanded_size(data, where: str) -> None:
    """Refuse YAML whose aliases (&name ... *name) would write out more than a recipe can hold:
    a 1 KB file of nested aliases stands for billions of values."""
    count = expanded_size(data, where)
    if count > MAX_RECIPE_VALUES:
        raise HfclsError(f"{where}: its YAML aliases (*name) expand to {count:,} values, more than the "
                         f"{MAX_RECIPE_VALUES:,} a recipe may hold; write the values out or nest fewer aliases")


def expanded_size(value, where: str, sizes=None, open_=None) -> int:
    """How many values `value` holds with every YAML alias written out, counted without
    writing them out (a shared mapping or list is counted once per place that uses it)."""
    sizes = {} if sizes is None else sizes
    open_ = set() if open_ is None else open_
    if not isinstance(value, (dict, list)):
        return 1
    key = id(value)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise HfclsError(f"{where}: a YAML alias refers to the mapping or list that holds it; "
                         "a recipe cannot contain itself")
    open_.add(key)
    items = value.values() if isinstance(value, dict) else value
    sizes[key] = 1 + sum(expanded_size(item, where, sizes, open_) for item in items)
    open_.discard(key)
    return sizes[key]


def _load_with_bases(path: Path, chain: tuple) -> dict:
    path = path.resolve()
    if path in chain:
        raise HfclsError(f"{path}: _base_ files include each other in a cycle: {' -> '.join(map(str, chain))}")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(base, str) for base in bases):
        raise HfclsError(f"{path}: _base_ must be a file name or a list of them (paths relative to the recipe), "
                         f"got {bases!r}")
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
    except (yaml.YAMLError, RecursionError):
        raise HfclsError(f'override "{override}": the value is not valid YAML; quote it') from None
    check_expanded_size(value, f'override "{key}"')
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
        kinds = [o for o in options if o is not type(None)]
        if len(kinds) > 1:  # e.g. a name or a list: the first kind the value has
            for kind in kinds:
                if isinstance(value, kind):
                    return _check_type(value, kind, key, where)
            raise HfclsError(f"{where}: {key} must be {' or '.join(k.__name__ for k in kinds)}, got {value!r}")
        return _check_type(value, kinds[0], key, where)
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
            value = float(value)
        except ValueError:
            pass
    expected = {int: int, float: float, bool: bool, str: str, list: list, dict: dict}[hint]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise HfclsError(f"{where}: {key} must be {expected.__name__}, got {value!r}")
    if expected is float and not math.isfinite(value):
        raise HfclsError(f"{where}: {key} must be a finite number, got {value!r}")
    return value


def _check_semantics(recipe: Recipe, where: str) -> None:
    _check_number_shapes(recipe, where)
    data, model = recipe.data, recipe.model
    for name in ("mean", "std"):
        values = getattr(data, name)
        if max(values) > 1.0:
            raise HfclsError(
                f"{where}: data.{name} {values} looks like the 0-255 scale; hfcls uses 0-1 "
                f"(divide by 255, e.g. 123.675 -> 0.485)"
            )
    _check_ranges(recipe, where)
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
    if recipe.optim.nesterov and recipe.optim.momentum == 0:
        raise HfclsError(f"{where}: optim.nesterov needs optim.momentum above 0")
    optim = recipe.optim
    if not all(isinstance(p, str) for p in optim.frozen):
        raise HfclsError(f"{where}: optim.frozen must be a list of parameter-name prefixes, got {optim.frozen!r}")
    _check_imbalance_keys(recipe, where)
    if recipe.train.push_to_hub and not recipe.train.publish:
        raise HfclsError(f"{where}: train.push_to_hub uploads the published model; set train.publish=true too")


# ----------------------------------------------------------------------------- ranges


def _check_number_shapes(recipe: Recipe, where: str) -> None:
    """Lists and mappings of numbers hold numbers, as many as they should."""
    for key, (kind, count) in NUMBER_LISTS.items():
        values = _value_at(recipe, key)
        if not isinstance(values, list) or (count is not None and len(values) != count) or not all(
                _is_number(v, kind) for v in values):
            size = f"{count} " if count else ""
            noun = "whole numbers" if kind is int else "numbers"
            raise HfclsError(f"{where}: {key} must be a list of {size}{noun}, got {values!r}")
    ema_settings(recipe.train.ema, where)
    scale = recipe.train.auto_scale_lr
    if scale is not None and (set(scale) != {"base_batch_size"} or not _is_number(scale["base_batch_size"], int)):
        raise HfclsError(f"{where}: train.auto_scale_lr must be {{base_batch_size: N}}, got {scale!r}")
    for prefix, mult in recipe.optim.lr_mult.items():
        if not _is_number(mult, float):
            raise HfclsError(f"{where}: optim.lr_mult.{prefix} must be a number, got {mult!r}")


def _check_ranges(recipe: Recipe, where: str) -> None:
    """Every number against its range in RANGES, the key named; lists and mappings item by item."""
    for key, interval in RANGES.items():
        value = _value_at(recipe, key)
        values = value.values() if isinstance(value, dict) else value if isinstance(value, list) else [value]
        for item in values:
            if item is not None and not in_interval(item, interval):
                raise HfclsError(f"{where}: {key} must be {interval_text(interval)}, got {value!r}")
    for name in ("train_pipeline", "eval_pipeline"):
        _check_transform_numbers(getattr(recipe.data, name), f"data.{name}", where)


def _value_at(recipe: Recipe, key: str):
    """The value of a dotted key; None when a mapping on the way (train.ema) is unset."""
    node: Any = recipe
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else getattr(node, part)
        if node is None:
            return None
    return node


def _is_number(value, kind) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, int) if kind is int else math.isfinite(value)


def in_interval(value, interval: str) -> bool:
    """Whether `value` lies in an interval written as "[0, 1)", "(0, inf)", ..."""
    low, high = (float(end) for end in interval[1:-1].split(","))
    above = value >= low if interval[0] == "[" else value > low
    below = value <= high if interval[-1] == "]" else value < high
    return above and below


def interval_text(interval: str) -> str:
    """ "[1, inf)" -> "at least 1", "(0, inf)" -> "above 0", "[0, 1)" -> "in [0, 1)" """
    low, high = (end.strip() for end in interval[1:-1].split(","))
    if high == "inf":
        return f"at least {low}" if interval[0] == "[" else f"above {low}"
    return f"in {interval}"


def _check_transform_numbers(specs: list, key: str, where: str) -> None:
    """The sizes, paddings and probabilities of a pipeline's transforms, before torchvision sees them."""
    if not isinstance(specs, list):
        return
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict):
            continue  # hfcls.data.transforms names what is wrong with it
        for name, interval in TRANSFORM_RANGES.items():
            value = spec.get(name)
            if value is None:
                continue
            kind = float if name == "p" else int
            items = value if isinstance(value, list) and kind is int else [value]
            if not items or not all(_is_number(v, kind) and in_interval(v, interval) for v in items):
                what = "a number" if kind is float else "a whole number (or a list of them)"
                raise HfclsError(f"{where}: {key}[{i}].{name} ({spec.get('type')}) must be {what} "
                                 f"{interval_text(interval)}, got {value!r}")


def ema_settings(ema: dict | None, where: str = "recipe") -> dict | None:
    """train.ema with its defaults filled in (EMA_DEFAULTS), each key checked."""
    if ema is None:
        return None
    if not isinstance(ema, dict):
        raise HfclsError(f"{where}: train.ema must be a mapping such as {{decay: 0.9998}}, got {ema!r}")
    unknown = set(ema) - set(EMA_DEFAULTS)
    if unknown:
        raise HfclsError(f"{where}: train.ema: unknown key(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(EMA_DEFAULTS)}")
    settings = {**EMA_DEFAULTS, **ema}
    for key in ("decay", "warmup_power", "every_n_steps"):
        kind, interval = int if key == "every_n_steps" else float, RANGES[f"train.ema.{key}"]
        if not _is_number(settings[key], kind) or not in_interval(settings[key], interval):
            noun = "a whole number" if kind is int else "a number"
            raise HfclsError(f"{where}: train.ema.{key} must be {noun} {interval_text(interval)}, "
                             f"got {settings[key]!r}")
    if not isinstance(settings["warmup"], bool):
        raise HfclsError(f"{where}: train.ema.warmup must be true or false, got {settings['warmup']!r}")
    return settings


def _check_imbalance_keys(recipe: Recipe, where: str) -> None:
    data, weights = recipe.data, recipe.train.class_weights
    if data.oversample_thr is not None and (data.sampler is None or not 0 < data.oversample_thr <= 1):
        raise HfclsError(f"{where}: data.oversample_thr is a fraction of images in (0, 1] used by "
                         f"data.sampler: class_balanced; got {data.oversample_thr} with data.sampler {data.sampler}")
    if isinstance(weights, str) and weights != "balanced":
        raise HfclsError(f"{where}: train.class_weights must be balanced or a list of numbers, got {weights!r}"
                         f"{did_you_mean(weights, ['balanced'])}")
    if isinstance(weights, list) and not all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0
                                             for w in weights):
        raise HfclsError(f"{where}: train.class_weights must be numbers >= 0, one per class, got {weights!r}")
