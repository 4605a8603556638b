"""Recipe.model + class names -> a transformers image-classification model.

Architectures come from a Hub id / local folder (`model.pretrained`) or from a
config dict (`model.config: {model_type: resnet, ...}`, random init). The head
size and label names always come from the dataset, and so does the problem type
(`config.problem_type`, which tells `transformers.pipeline` to apply a sigmoid
to a multi-label model's logits) unless the recipe sets `model.problem_type`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoConfig, AutoModelForImageClassification, PretrainedConfig

import hfcls.modeling  # noqa: F401  registers hfcls's own architectures with the Auto classes
from hfcls.errors import HfclsError
from hfcls.labels import SINGLE_LABEL, label_maps


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
            model_section.pretrained, labels, model_section.ignore_mismatched_sizes, model_section.trust_remote_code
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
        return AutoConfig.for_model(model_type, **kwargs, **labels)
    except ValueError as error:
        raise HfclsError(f"model.config: model_type {model_type!r} is not known to transformers ({error})") from None
    except (TypeError, StrictDataclassError) as error:  # transformers checks each field's type
        cause = error.__cause__ or error
        raise HfclsError(f"model.config: {' '.join(str(cause).split())[:300]}") from None


def load_pretrained(
    name_or_path: str, labels: dict, ignore_mismatched_sizes: bool = True, trust_remote_code: bool = False
):
    """A Hub id or a Hugging Face folder, with a head for this dataset's classes."""
    try:
        with remote_code_refused(name_or_path, "model.pretrained"):
            return AutoModelForImageClassification.from_pretrained(
                name_or_path,
                ignore_mismatched_sizes=ignore_mismatched_sizes,
                trust_remote_code=trust_remote_code,
                **labels,
            )
    except OSError as error:
        where = "folder" if os.path.isdir(name_or_path) else "Hub id"
        raise HfclsError(
            f"model.pretrained: cannot load {where} {name_or_path!r} ({str(error).splitlines()[0]}); "
            "check the name, or go online (HF_HUB_OFFLINE=0) to download it"
        ) from None


def architecture_config(model_section, class_names: list, problem_type: str = SINGLE_LABEL):
    """The recipe's model config with a head for `class_names` (nothing downloaded for
    `model.config`; only the config for `model.pretrained`)."""
    labels = label_maps(class_names, problem_type)
    if model_section.config is not None:
        return config_from_dict(model_section.config, labels)
    try:
        with remote_code_refused(model_section.pretrained, "model.pretrained"):
            return AutoConfig.from_pretrained(
                model_section.pretrained, trust_remote_code=model_section.trust_remote_code, **labels
            )
    except OSError as error:
        raise HfclsError(
            f"model.pretrained: cannot load the config of {model_section.pretrained!r} ({str(error).splitlines()[0]})"
        ) from None


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
