"""Recipe.model + class names -> a transformers image-classification model.

Architectures come from a Hub id / local folder (`model.pretrained`) or from a
config dict (`model.config: {model_type: resnet, ...}`, random init). The head
size and label names always come from the dataset.
"""

from __future__ import annotations

import os

import torch
from transformers import AutoConfig, AutoModelForImageClassification

import hfcls.modeling  # noqa: F401  registers hfcls's own architectures with the Auto classes
from hfcls.errors import HfclsError


def label_maps(class_names: list) -> dict:
    return {
        "num_labels": len(class_names),
        "id2label": {i: str(name) for i, name in enumerate(class_names)},
        "label2id": {str(name): i for i, name in enumerate(class_names)},
    }


class LogitsOnly(torch.nn.Module):
    """A classifier as a module that returns its logits tensor, not a ModelOutput: the form
    torch's ONNX exporter and pytorch-grad-cam call."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return self.model(pixel_values=pixel_values).logits


def class_names_of(model) -> list:
    return [model.config.id2label[i] for i in range(model.config.num_labels)]


def build_model(model_section, class_names: list):
    labels = label_maps(class_names)
    if model_section.pretrained is not None:
        return load_pretrained(model_section.pretrained, labels, model_section.ignore_mismatched_sizes)
    config = config_from_dict(model_section.config, labels)
    return AutoModelForImageClassification.from_config(config)


def config_from_dict(config: dict, labels: dict):
    kwargs = dict(config)
    model_type = kwargs.pop("model_type")
    try:
        return AutoConfig.for_model(model_type, **kwargs, **labels)
    except ValueError as error:
        raise HfclsError(f"model.config: model_type {model_type!r} is not known to transformers ({error})") from None


def load_pretrained(name_or_path: str, labels: dict, ignore_mismatched_sizes: bool = True):
    """A Hub id or a Hugging Face folder, with a head for this dataset's classes."""
    try:
        return AutoModelForImageClassification.from_pretrained(
            name_or_path, ignore_mismatched_sizes=ignore_mismatched_sizes, **labels
        )
    except OSError as error:
        where = "folder" if os.path.isdir(name_or_path) else "Hub id"
        raise HfclsError(
            f"model.pretrained: cannot load {where} {name_or_path!r} ({str(error).splitlines()[0]}); "
            "check the name, or go online (HF_HUB_OFFLINE=0) to download it"
        ) from None


def architecture_config(model_section, class_names: list):
    """The recipe's model config with a head for `class_names` (nothing downloaded for
    `model.config`; only the config for `model.pretrained`)."""
    labels = label_maps(class_names)
    if model_section.config is not None:
        return config_from_dict(model_section.config, labels)
    try:
        return AutoConfig.from_pretrained(model_section.pretrained, **labels)
    except OSError as error:
        raise HfclsError(f"model.pretrained: cannot load the config of {model_section.pretrained!r} "
                         f"({str(error).splitlines()[0]})") from None
