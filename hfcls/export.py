"""Hugging Face folders: config.json + model.safetensors + preprocessor_config.json.

The preprocessor reproduces the recipe's eval pipeline, so
`transformers.pipeline("image-classification", model=folder)` predicts what
hfcls evaluates.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from transformers import BitImageProcessor

from hfcls.data.transforms import preprocessor_kwargs


def image_processor(data) -> BitImageProcessor:
    return BitImageProcessor(**preprocessor_kwargs(data.eval_pipeline, data.mean, data.std))


def save_hf_folder(model, data, folder: Path) -> None:
    write_hf_folder(model, image_processor(data), folder)


def write_hf_folder(model, processor, folder: Path) -> None:
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
