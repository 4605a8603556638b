"""Images a user points at (a file, a folder, a glob, a PIL image, an array) -> the uint8
tensors a model's eval preprocessing takes: hfcls-demo, hfcls.pipeline, hfcls-export's
validation and hfcls-cam read their inputs here."""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from hfcls.data.decode import MAX_IMAGE_PIXELS, decode, pil_to_uint8
from hfcls.errors import HfclsError


def expand_images(pattern: str) -> tuple[list, bool]:
    """IMAGE as the commands take it -> (files, is_many): a file, a folder (all files below it) or a glob."""
    path = Path(pattern)
    if path.is_file():
        return [str(path)], False
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    else:
        files = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not files:
        raise HfclsError(f"no image files at {pattern}; pass an image, a folder or a glob such as 'photos/*.jpg'")
    return files, True


def to_uint8_tensor(image, max_pixels: int = MAX_IMAGE_PIXELS) -> torch.Tensor:
    """A path, PIL image or HWC/HW uint8 array -> uint8 CHW RGB tensor, by the loaders' decode rule
    (hfcls.data.decode: bit depth, pixel limit)."""
    if isinstance(image, (str, Path)):
        return decode({"path": str(image), "bytes": None}, to_rgb=True, max_pixels=max_pixels)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"arrays must be uint8 HxWxC or HxW, got {image.dtype}")
        image = Image.fromarray(image)
    if isinstance(image, Image.Image):
        return pil_to_uint8(image, to_rgb=True)
    raise ValueError(f"expected a path, PIL image or numpy array, got {type(image).__name__}")


def dataset_files(dataset) -> list:
    """Each row's image file (None for an image stored only as bytes), read without decoding."""
    import datasets

    column = dataset.select_columns(["image"]).cast_column("image", datasets.Image(decode=False))
    return [row["image"].get("path") if row["image"] else None for row in column]
