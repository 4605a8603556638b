"""Recipe.model + class names -> a transformers image-classification model.

Architectures come from a Hub id / local folder (`model.pretrained`, a timm model's
included: hfcls.timm_models) or from a config dict (`model.config: {model_type: resnet, ...}`,
random init). A pretrained model's config takes `model.config_overrides` (drop_path_rate, ...)
as long as every pretrained tensor keeps its shape. The head size and label names always come
from the dataset, and so does the problem type (`config.problem_type`, which tells
`transformers.pipeline` to apply a sigmoid to a multi-label model's logits) unless the recipe
sets `model.problem_type`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForImageClassification, PretrainedConfig

import hfcls.modeling  # noqa: F401  registers hfcls's own architectures with the Auto classes
from hfcls.errors import HfclsError, did_you_mean
from hfcls.labels import SINGLE_LABEL, label_maps
from hfcls.timm_models import check_buildable, classifier_module, is_timm, require_timm, timm_model_args


class LogitsOnly(torch.nn.Module):
    """A classifier as a module that returns its logits tensor, not a ModelOutput: the form
    torch's ONNX exporter and pytorch-grad-cam call."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values).logits


def build_model(model_section, class_names: list, problem_type: str = SINGLE_LABEL):
    labels = label_maps(class_names, problem_type)
    if model_section.pretrained is not None:
        return load_pretrained(
            model_section.pretrained,
            labels,
            model_section.ignore_mismatched_sizes,
            model_section.trust_remote_code,
            model_section.config_overrides,
        )
    config = config_from_dict(model_section.config, labels)
    model = AutoModelForImageClassification.from_config(config)
    empty = next((name for name, param in model.named_parameters() if param.numel() == 0), None)
    if empty is not None:  # a size of 0 in model.config: the first forward pass would fail deep in torch
        raise HfclsError(
            f"model.config builds {empty} with shape {tuple(model.get_parameter(empty).shape)}, "
            "which holds nothing; check the sizes in model.config"
        )
    return model


def config_from_dict(config: dict, labels: dict):
    kwargs = dict(config)
    model_type = kwargs.pop("model_type")
    try:
        built = AutoConfig.for_model(model_type, **kwargs, **labels)
    except ValueError as error:
        raise HfclsError(f"model.config: model_type {model_type!r} is not known to transformers ({error})") from None
    except (TypeError, StrictDataclassError) as error:  # transformers checks each field's type
        cause = error.__cause__ or error
        raise HfclsError(f"model.config: {' '.join(str(cause).split())[:300]}") from None
    if is_timm(built):
        require_timm(f"model.config {built.architecture} (a timm model)")
    return built


def load_pretrained(
    name_or_path: str,
    labels: dict,
    ignore_mismatched_sizes: bool = True,
    trust_remote_code: bool = False,
    config_overrides: dict | None = None,
):
    """A Hub id or a Hugging Face folder (a timm one included), its config changed by
    `config_overrides`, with a head for this dataset's classes."""
    config = pretrained_config(name_or_path, labels, trust_remote_code, config_overrides or {})
    if is_timm(config):
        check_buildable(config, f"model.pretrained {name_or_path}")
    try:
        with remote_code_refused(name_or_path, "model.pretrained"):
            model, info = AutoModelForImageClassification.from_pretrained(
                name_or_path,
                config=config,
                ignore_mismatched_sizes=ignore_mismatched_sizes,
                trust_remote_code=trust_remote_code,
                output_loading_info=True,
            )
    except OSError as error:
        where = "folder" if os.path.isdir(name_or_path) else "Hub id"
        raise HfclsError(
            f"model.pretrained: cannot load {where} {name_or_path!r} ({str(error).splitlines()[0]}); "
            "check the name, or go online (HF_HUB_OFFLINE=0) to download it"
        ) from None
    except SafetensorError as error:
        raise HfclsError(
            f"model.pretrained: the weights of {name_or_path} cannot be read ({error}); the file is damaged: "
            "download or save it again"
        ) from None
    except ValueError as error:
        if "Unrecognized configuration class" not in str(error):
            raise
        raise HfclsError(  # a config class without an image-classification model (CLIP, BERT, ...)
            f"model.pretrained: {name_or_path} ({config.model_type}) has no image-classification form in "
            f"transformers ({str(error).splitlines()[0][:200]}); choose an image classifier or a vision backbone"
        ) from None
    except RuntimeError as error:
        if "ignore_mismatched_sizes" not in str(error):
            raise
        raise HfclsError(
            f"model.pretrained: the head of {name_or_path} has another class count than the data's "
            f"{labels['num_labels']} classes, and model.ignore_mismatched_sizes is false; set it to true "
            "to give the model a new head"
        ) from None
    check_only_head_new(model, info, name_or_path)
    return model


def pretrained_config(name_or_path: str, labels: dict, trust_remote_code: bool, overrides: dict):
    """The pretrained model's config with this dataset's labels and the recipe's `overrides`."""
    try:
        with remote_code_refused(name_or_path, "model.pretrained"):
            config = AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code, **labels)
    except OSError as error:
        raise HfclsError(
            f"model.pretrained: cannot load the config of {name_or_path!r} ({str(error).splitlines()[0]}); "
            "check the name, or go online (HF_HUB_OFFLINE=0) to download it"
        ) from None
    except ValueError as error:
        if "does not recognize this architecture" not in str(error):
            raise
        raise HfclsError(  # a config.json of no model_type transformers knows
            f"model.pretrained: {name_or_path} is no model transformers knows ({str(error).splitlines()[0][:200]})"
        ) from None
    if is_timm(config):
        config.model_args = timm_model_args(config, overrides, f"model.pretrained {name_or_path}")
        return config
    known = [key for key in config.to_dict() if not key.startswith("_")]  # not _name_or_path and the like
    for key, value in overrides.items():
        if key not in known:
            raise HfclsError(
                f"model.config_overrides: the {config.model_type} config of {name_or_path} has no setting "
                f"{key!r}{did_you_mean(key, known)}; its settings: {', '.join(sorted(known))}"
            )
        setattr(config, key, value)
    return config


def check_only_head_new(model, info: dict, name_or_path: str) -> None:
    """Only the head may start from random: a pretrained tensor that did not fit elsewhere (a
    config override that changes a shape) would silently lose what it learned."""
    head = set(head_parameter_names(model))
    for key, saved, built in sorted(info["mismatched_keys"]):
        if key not in head:
            raise HfclsError(
                f"model.pretrained {name_or_path}: {key} has shape {tuple(saved)} in the pretrained weights "
                f"but {tuple(built)} in the model (model.config_overrides changes it?); it would start "
                "from random: keep the settings that shape the weights"
            )
    missing = sorted(set(info["missing_keys"]) - head)
    if missing:
        raise HfclsError(
            f"model.pretrained {name_or_path}: its weights have no {missing[0]} ({len(missing)} such tensors; "
            "model.config_overrides adds layers?); they would start from random: keep the settings "
            "that shape the weights"
        )


def head_parameter_names(model) -> list:
    """The names of the classification head's tensors: what a fine-tune starts from random (for a
    model whose weights are not under its base_model_prefix, all of them)."""
    if is_timm(model):
        head = {id(p) for p in classifier_module(model).parameters()}
        return [name for name, param in model.named_parameters() if id(param) in head]
    base = model.base_model_prefix + "."
    return [name for name in model.state_dict() if not name.startswith(base)]


def architecture_config(model_section, class_names: list, problem_type: str = SINGLE_LABEL):
    """The recipe's model config with a head for `class_names` (nothing downloaded for
    `model.config`; only the config for `model.pretrained`)."""
    labels = label_maps(class_names, problem_type)
    if model_section.config is not None:
        return config_from_dict(model_section.config, labels)
    return pretrained_config(
        model_section.pretrained, labels, model_section.trust_remote_code, model_section.config_overrides
    )


@contextmanager
def remote_code_refused(name_or_path, where: str):
    """transformers' refusal to run a model's own code (trust_remote_code=False), as one line naming it."""
    try:
        yield
    except ValueError as error:
        if "trust_remote_code" not in str(error):
            raise
        raise HfclsError(
            f"{where}: {name_or_path} needs its own Python code to load ({auto_map_entry(name_or_path)}), "
            "and hfcls runs no code from model files; set model.trust_remote_code: true in the recipe "
            "only if you trust the model's author (the code runs on this machine)"
        ) from None


def auto_map_entry(name_or_path) -> str:
    """The config.json auto_map entry that asks for custom code (reading the JSON runs nothing)."""
    try:
        config, _ = PretrainedConfig.get_config_dict(str(name_or_path))
        auto_map = config.get("auto_map") or {}
        key = next(
            (k for k in ("AutoModelForImageClassification", "AutoConfig") if k in auto_map), next(iter(auto_map))
        )
        return f"config.json auto_map {key}: {auto_map[key]}"
    except Exception:  # only the message depends on it
        return "its config.json has an auto_map"
