"""Image bytes -> uint8 samples: the one decode rule of every reader, and the batch collate.

Rows hold `{'path', 'bytes'}` as `datasets.Image(decode=False)` stores them; each
is decoded to a uint8 CHW tensor and sent through the split's v2 pipeline in a
DataLoader worker. Conversion to float and normalisation happen later, once
per batch on the device.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

logger = logging.getLogger(__name__)

DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError)


def decode(image: dict, to_rgb: bool) -> torch.Tensor:
    """{'path', 'bytes'} -> uint8 CHW tensor.

    torchvision's decoder reads JPEG/PNG/WebP/GIF 2-4x faster than Pillow here
    (benchmarks/README.md); Pillow reads the other formats and names what is
    wrong with a corrupt file.
    """
    data = image_bytes(image)
    try:
        return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                            mode=ImageReadMode.RGB if to_rgb else ImageReadMode.UNCHANGED)
    except RuntimeError:
        pass
    with Image.open(io.BytesIO(data)) as pil:
        pil = pil.convert("RGB") if to_rgb else pil
        return F.pil_to_tensor(pil)


def image_bytes(image: dict) -> bytes:
    """The encoded file of a {'path', 'bytes'} row: its bytes, or the file they were left in."""
    return image["bytes"] if image.get("bytes") else Path(image["path"]).read_bytes()


class SampleTransform:
    """Decode one batch of rows and apply the v2 pipeline; runs in DataLoader workers.

    An image that cannot be decoded becomes a black placeholder marked invalid,
    with its file name kept: the main process raises a clear error or skips it,
    and every process still runs the same batches (no rank falls out of step).
    """

    def __init__(self, pipeline, to_rgb: bool):
        self.pipeline = pipeline
        self.to_rgb = to_rgb

    def __call__(self, batch: dict) -> dict:
        images, valid, names = [], [], []
        for image in batch["image"]:
            name = image.get("path") or "<in-memory image>"
            try:
                images.append(self.pipeline(decode(image, self.to_rgb)))
                valid.append(True)
            except DECODE_ERRORS as error:
                logger.warning("cannot decode image %s: %s", name, error)
                images.append(self.pipeline(torch.zeros(3, 256, 256, dtype=torch.uint8)))
                valid.append(False)
            names.append(name)
        return {"pixel_values": images, "labels": batch["label"], "valid": valid, "file": names}


def collate(samples: list) -> dict:
    """Stack uint8 images, labels and the valid-image mask; list undecodable files."""
    return {
        "pixel_values": torch.stack([s["pixel_values"] for s in samples]),
        "labels": torch.tensor([s["labels"] for s in samples], dtype=torch.long),
        "valid": torch.tensor([s["valid"] for s in samples], dtype=torch.bool),
        "bad_files": [s["file"] for s in samples if not s["valid"]],
    }
