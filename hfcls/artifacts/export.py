"""Hugging Face folders: config.json + model.safetensors + preprocessor_config.json.

The preprocessor reproduces the recipe's eval pipeline, so
`transformers.pipeline("image-classification", model=folder)` predicts what
hfcls evaluates.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

from transformers import BitImageProcessor

from hfcls.data.transforms import preprocessor_kwargs


def image_processor(data) -> BitImageProcessor:
    """The exported preprocessing of a recipe's data section (raises if its eval pipeline cannot be exported)."""
    return BitImageProcessor(**preprocessor_kwargs(data.eval_pipeline, data.mean, data.std))


def processor_from_dict(config: dict) -> BitImageProcessor:
    """A processor from its saved form (preprocessor_config.json, or a published file's metadata)."""
    return BitImageProcessor.from_dict(config)


def save_description(model, processor, folder: Path) -> None:
    """config.json and preprocessor_config.json: what a weights file needs to be used on its own."""
    config = copy.deepcopy(model.config)
    config.architectures = [type(model).__name__]  # as save_pretrained records it
    config.save_pretrained(folder)
    processor.save_pretrained(folder)


def save_hf_folder(model, processor, folder: Path) -> None:
    """Write the folder atomically: a reader sees the old export or the new one, whole."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
