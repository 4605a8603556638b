"""Validation: a merged recipe mapping -> a Recipe of finished settings, every mistake named by its key.

Types come from the schema's annotations, ranges from hfcls.recipe.ranges; then the rules that tie
keys together. train.ema, train.loss, train.log_with, model.lora and train.distill come out checked
and completed (hfcls.recipe.settings), data.eval_size is folded into the eval pipeline and
data.progressive_resizing checked (hfcls.recipe.resolution), and an eval pipeline is one a Hugging Face processor can express
(hfcls.recipe.preprocessing): the engine uses them as they are.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Literal

from hfcls.errors import HfclsError, did_you_mean
from hfcls.recipe.preprocessing import preprocessor_kwargs
from hfcls.recipe.ranges import check_number_shapes, check_ranges
from hfcls.recipe.resolution import check_progressive_resizing, eval_pipeline_at
from hfcls.recipe.schema import OPTIMIZERS, TORCH_OPTIMIZERS, Recipe
from hfcls.recipe.settings import check_loss, distill_settings, ema_settings, lora_settings, tracker_names

# Config keys hfcls sets from the data (timm's num_classes among them).
LABEL_KEYS = ("num_labels", "id2label", "label2id", "problem_type", "num_classes", "label_names")


def validate(raw: dict, where: str = "recipe") -> Recipe:
    """The Recipe that `raw` (bases merged, overrides applied) describes, its settings finished."""
    recipe = _build(Recipe, raw, prefix="", where=where)
    train, data = recipe.train, recipe.data
    train.ema = ema_settings(train.ema, where)  # complete before the ranges read its numbers
    recipe.model.lora = lora_settings(recipe.model.lora, where)
    train.distill = distill_settings(train.distill, where)
    _check_semantics(recipe, where)
    check_loss(train.loss, where)
    train.log_with = tracker_names(train.log_with, where)
    data.progressive_resizing = check_progressive_resizing(data, where)
    data.eval_pipeline = eval_pipeline_at(data.eval_pipeline, data.eval_size, where)
    if data.eval_pipeline:  # training, which exports, also refuses none at all (hfcls.engine.setup)
        preprocessor_kwargs(data.eval_pipeline, data.mean, data.std, f"{where}: data.eval_pipeline")
    return recipe


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
                f"{where}: unknown key {prefix}{key}{did_you_mean(key, fields)}; known keys here: {', '.join(fields)}"
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
    check_number_shapes(recipe, where)
    data, model = recipe.data, recipe.model
    for name in ("mean", "std"):
        values = getattr(data, name)
        if max(values) > 1.0:
            raise HfclsError(
                f"{where}: data.{name} {values} looks like the 0-255 scale; hfcls uses 0-1 "
                f"(divide by 255, e.g. 123.675 -> 0.485)"
            )
    check_ranges(recipe, where)
    if data.in_memory and data.decode != "workers":
        raise HfclsError(
            f"{where}: data.in_memory decodes each split once itself; leave data.decode at workers "
            "or set data.in_memory=false"
        )
    if data.train_val_split is not None and data.val is not None:
        raise HfclsError(f"{where}: set either data.val or data.train_val_split, not both")
    if model.pretrained is None and model.config is None:
        raise HfclsError(f"{where}: set model.pretrained (Hub id or folder) or model.config (model_type: ...)")
    if model.pretrained is not None and model.config is not None:
        raise HfclsError(f"{where}: set model.pretrained or model.config, not both (override one with =null)")
    if model.config is not None and "model_type" not in model.config:
        raise HfclsError(f"{where}: model.config needs a model_type (e.g. resnet, vit, convnext)")
    _check_model_settings(model, where)
    if recipe.optim.nesterov and recipe.optim.momentum == 0:
        raise HfclsError(f"{where}: optim.nesterov needs optim.momentum above 0")
    optim = recipe.optim
    if optim.type.removeprefix("lookahead_") not in OPTIMIZERS:
        raise HfclsError(
            f"{where}: optim.type {optim.type!r} is not an optimizer{did_you_mean(optim.type, OPTIMIZERS)}; "
            f"torch's: {', '.join(TORCH_OPTIMIZERS)}; timm's (the timm extra): lamb, lars, lion, adan and "
            "the rest of timm.optim.list_optimizers(), each also as lookahead_<name>"
        )
    if not all(isinstance(p, str) for p in optim.frozen):
        raise HfclsError(f"{where}: optim.frozen must be a list of parameter-name prefixes, got {optim.frozen!r}")
    _check_imbalance_keys(recipe, where)
    if model.lora is not None and optim.frozen:
        raise HfclsError(
            f"{where}: model.lora freezes every weight but the adapters and the head already; "
            "drop optim.frozen (or model.lora to freeze by prefix)"
        )
    if recipe.train.push_to_hub and not recipe.train.publish:
        raise HfclsError(f"{where}: train.push_to_hub uploads the published model; set train.publish=true too")


def _check_model_settings(model, where: str) -> None:
    """The label keys come from the data; config_overrides change a pretrained model's config only
    (its keys are checked against that config when it loads: hfcls.models)."""
    if model.config_overrides and model.config is not None:
        raise HfclsError(
            f"{where}: model.config_overrides changes model.pretrained's config; with model.config, "
            "write those settings in model.config itself"
        )
    model_args = (model.config or {}).get("model_args") or {}
    for key in (*model.config_overrides, *(f"model_args.{k}" for k in model_args)):
        if key.rsplit(".", 1)[-1] in LABEL_KEYS:
            section = "config_overrides" if "." not in key else "config"
            raise HfclsError(
                f"{where}: model.{section}.{key}: the classes come from the data (and the problem type from "
                "its labels, or model.problem_type); remove it"
            )


def _check_imbalance_keys(recipe: Recipe, where: str) -> None:
    data, weights = recipe.data, recipe.train.class_weights
    if data.oversample_thr is not None and (data.sampler is None or not 0 < data.oversample_thr <= 1):
        raise HfclsError(
            f"{where}: data.oversample_thr is a fraction of images in (0, 1] used by "
            f"data.sampler: class_balanced; got {data.oversample_thr} with data.sampler {data.sampler}"
        )
    if isinstance(weights, str) and weights != "balanced":
        raise HfclsError(
            f"{where}: train.class_weights must be balanced or a list of numbers, got {weights!r}"
            f"{did_you_mean(weights, ['balanced'])}"
        )
    if isinstance(weights, list) and not all(
        isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in weights
    ):
        raise HfclsError(f"{where}: train.class_weights must be numbers >= 0, one per class, got {weights!r}")
