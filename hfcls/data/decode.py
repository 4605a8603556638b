"""Image bytes -> uint8 samples: the one decode rule of every reader, and the batch collate.

Rows hold `{'path', 'bytes'}` as `datasets.Image(decode=False)` stores them; each
is decoded to a uint8 CHW tensor and sent through the split's v2 pipeline in a
DataLoader worker. Conversion to float and normalisation happen later, once
per batch on the device.

The rule, the same for training, evaluation, data.in_memory, hfcls-verify,
hfcls-browse and hfcls-demo:

- an image with more than `max_pixels` pixels (data.max_image_pixels) is refused
  from its header, before any pixel is decoded;
- 8-bit images are read as they are; 16-bit ones (PNG, TIFF) keep their top 8 bits,
  as `torchvision.transforms.v2.ToDtype(torch.uint8, scale=True)` converts them;
- 32-bit integer and float images are refused: their range is not known;
- `to_rgb`: every image becomes 3-channel RGB; otherwise grey stays 1 channel
  (2 with alpha) and colour 3 (4 with alpha).

A refused image is handled as an undecodable one (`data.skip_bad_images`).

Scaled decoding (`data.scaled_decode`, hfcls.data.decode.CropFirst): where a pipeline starts with
RandomResizedCrop or Resize, that first step's parameters are drawn from the image's header size,
before any pixel is decoded, and a JPEG whose drawn crop is at least 2, 4 or 8 times the output
size on both sides is decoded at 1/2, 1/4 or 1/8 of its size by the JPEG decoder's DCT scaling
(Pillow's `draft`). The crop is the same one the full pipeline would draw, from the same per-sample
seed (exact resume holds); the pixels differ from a full decode by resampling only, the DCT's own
low-pass in place of part of the bilinear one (tests/data/test_decode.py bounds the difference).
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from hfcls.errors import HfclsError
from hfcls.recipe.schema import MAX_IMAGE_PIXELS

logger = logging.getLogger(__name__)

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
DRAFT_MODES = ("RGB", "L")  # the JPEG modes Pillow's draft decodes at a reduced scale as they are
SCALES = (8, 4, 2)  # the DCT scalings Pillow's draft offers, largest first
PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}  # by InterpolationMode


def compose(transforms: list):
    """v2.Compose of `transforms`; v2.Identity for none (the default), which v2.Compose refuses."""
    return v2.Compose(transforms) if transforms else v2.Identity()


class ImageRefused(ValueError):
    """An image hfcls will not read (too many pixels, a bit depth without a fixed range)."""


DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError)  # ImageRefused is a ValueError


def decode(image: dict, to_rgb: bool, max_pixels: int = MAX_IMAGE_PIXELS) -> torch.Tensor:
    """{'path', 'bytes'} -> uint8 CHW tensor, by the rule above.

    torchvision's decoder reads JPEG/PNG/WebP/GIF 2-4x faster than Pillow here
    (benchmarks/README.md); Pillow reads the other formats and names what is
    wrong with a corrupt file. Pillow reads the header first, for the pixel count.
    """
    data = image_bytes(image)
    with _header(data, max_pixels) as pil:
        return _decode_opened(data, pil, to_rgb)


def _decode_opened(data: bytes, pil: Image.Image, to_rgb: bool) -> torch.Tensor:
    """The whole image of `data`, whose header `pil` has read: by torchvision, else by Pillow."""
    try:
        pixels = decode_image(
            torch.frombuffer(bytearray(data), dtype=torch.uint8),
            mode=ImageReadMode.RGB if to_rgb else ImageReadMode.UNCHANGED,
        )
    except RuntimeError:
        return pil_to_uint8(pil, to_rgb)
    # torchvision gives 16-bit PNGs as uint16
    return F.to_dtype(pixels, torch.uint8, scale=True) if pixels.dtype != torch.uint8 else pixels


def draft(pil: Image.Image, scale: int, to_rgb: bool) -> tuple:
    """(`pil` decoded at 1/`scale` of its size by the JPEG decoder's DCT scaling (Pillow's draft), the
    scale it got), or (None, 1) for an image that cannot be: not a JPEG, or not RGB or grey."""
    if pil.format != "JPEG" or pil.mode not in DRAFT_MODES:
        return None, 1
    width = pil.width
    drafted = pil.draft(pil.mode, (width // scale, pil.height // scale))
    if drafted is None:  # a JPEG Pillow cannot scale
        return None, 1
    _, (_, _, scaled_width, _) = drafted  # the whole image's box at the chosen scale
    pil.load()
    return (pil.convert("RGB") if to_rgb and pil.mode != "RGB" else pil), width / scaled_width


def _header(data: bytes, max_pixels: int) -> Image.Image:
    """The image opened lazily (only its header read), refused when it has too many pixels."""
    with warnings.catch_warnings():
        # Pillow warns above its own limit; data.max_image_pixels decides instead, just below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            pil = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            pil = None
        except UnidentifiedImageError:  # Pillow reads every format torchvision does
            raise UnidentifiedImageError("not an image file in a format Pillow knows") from None
    if pil is None:  # Pillow refuses to open an image above twice its own limit
        pillow_limit = 2 * Image.MAX_IMAGE_PIXELS
        if max_pixels < pillow_limit:
            raise ImageRefused(too_many_pixels(f"more than {pillow_limit:,} pixels", max_pixels))
        raise ImageRefused(
            f"more than {pillow_limit:,} pixels, which Pillow refuses whatever data.max_image_pixels "
            "says; shrink the image, or raise PIL.Image.MAX_IMAGE_PIXELS too"
        )
    width, height = pil.size
    if width * height > max_pixels:
        pil.close()
        raise ImageRefused(too_many_pixels(f"{width} x {height} = {width * height:,} pixels", max_pixels))
    return pil


def too_many_pixels(pixels: str, max_pixels: int) -> str:
    return f"{pixels}, more than data.max_image_pixels ({max_pixels:,}); shrink the image or raise the limit"


def pil_to_uint8(pil: Image.Image, to_rgb: bool) -> torch.Tensor:
    """A Pillow image -> uint8 CHW tensor by the rule above (16-bit: the top 8 bits)."""
    if pil.mode in SIXTEEN_BIT_MODES:
        grey = torch.from_numpy(np.asarray(pil).astype(np.uint16))[None]
        grey = F.to_dtype(grey, torch.uint8, scale=True)
        return grey.expand(3, -1, -1).clone() if to_rgb else grey
    if pil.mode in ("I", "F"):
        raise ImageRefused(
            f"{'32-bit integer' if pil.mode == 'I' else 'floating-point'} pixels (Pillow mode "
            f"{pil.mode}) have no fixed range to scale from; save the image with 8 or 16 bits"
        )
    return F.pil_to_tensor(pil.convert("RGB" if to_rgb else _kept_channels(pil)))


def _kept_channels(pil: Image.Image) -> str:
    """The 8-bit mode that keeps what `pil` holds: grey or colour, with alpha if it has one."""
    alpha = "A" in pil.getbands() or "transparency" in pil.info
    grey = pil.mode in ("1", "L", "LA", "La")
    return ("LA" if alpha else "L") if grey else ("RGBA" if alpha else "RGB")


def image_bytes(image: dict) -> bytes:
    """The encoded file of a {'path', 'bytes'} row: its bytes (empty ones too: a zero-byte file read
    already), or the file they were left in."""
    return image["bytes"] if image.get("bytes") is not None else Path(image["path"]).read_bytes()


class CropFirst:
    """A v2 pipeline whose first step (RandomResizedCrop or Resize) is drawn from the image's header
    size before decoding, so that a JPEG can be decoded at the smallest DCT scale that still holds
    the step's output size (the module's docstring). `head` is None for any other pipeline."""

    def __init__(self, pipeline):
        steps = list(pipeline.transforms) if isinstance(pipeline, v2.Compose) else [pipeline]
        self.head = steps[0] if isinstance(steps[0], (v2.RandomResizedCrop, v2.Resize)) else None
        self.rest = compose(steps[1:])
        self.own_size = list(self.head.size) if isinstance(self.head, v2.RandomResizedCrop) else None
        # Pillow's filter for the head's interpolation; None (no scaled decoding) for one it has not
        # or without antialiasing, which Pillow always applies.
        self.resample = (
            PIL_FILTERS.get(InterpolationMode(self.head.interpolation).value)
            if self.head is not None and self.head.antialias is not False
            else None
        )

    def set_size(self, side: int | None) -> None:
        """RandomResizedCrop's output side (progressive resizing); None: the pipeline's own."""
        if side is None and self.own_size is None:  # the loop resets every epoch's side, crop or not
            return
        self.head.size = [side, side] if side else list(self.own_size)

    def __call__(self, data: bytes, pil: Image.Image, to_rgb: bool) -> torch.Tensor:
        """The pipeline's output for the image `data`, whose header `pil` has read."""
        size = (pil.height, pil.width)
        if self.resample is None or fitting_scale(size, self.out_size(*size)) == 1:
            # Not even the whole image is twice the output: decoded whole, the pipeline as it is.
            return self.rest(self.head(_decode_opened(data, pil, to_rgb)))
        # The same draws, in the same order, as the whole pipeline makes on the decoded image: from a
        # stand-in of its size that holds no pixels.
        params = self.head.make_params([torch.empty(1, dtype=torch.uint8).expand(3, *size)])
        top, left, height, width = (
            (params["top"], params["left"], params["height"], params["width"]) if "top" in params else (0, 0, *size)
        )
        out = self.out_size(*size)
        scale = fitting_scale((height, width), out)
        small, scale = draft(pil, scale, to_rgb) if scale > 1 else (None, 1)
        if small is None:  # bit for bit what the pipeline makes of the whole image
            return self.rest(self.head.transform(_decode_opened(data, pil, to_rgb), params))
        # Pillow's resize takes the crop's box in fractions of a pixel, so the smaller image is cut
        # where the whole one would be; its bilinear/bicubic filters are the ones torchvision's
        # antialiased resize copies.
        box = (left / scale, top / scale, (left + width) / scale, (top + height) / scale)
        return self.rest(F.pil_to_tensor(small.resize((out[1], out[0]), self.resample, box=box)))

    def out_size(self, height: int, width: int) -> tuple:
        """(height, width) the first step makes of an image of this size."""
        if isinstance(self.head, v2.RandomResizedCrop):
            return tuple(self.head.size)
        canvas = tv_tensors.BoundingBoxes(torch.zeros(0, 4), format="XYXY", canvas_size=(height, width))
        return tuple(self.head(canvas).canvas_size)  # Resize's own rule (shorter side, max_size)


def fitting_scale(region: tuple, out: tuple) -> int:
    """The largest DCT scale at which a (height, width) `region` still covers the `out` size."""
    return next((scale for scale in SCALES if region[0] // scale >= out[0] and region[1] // scale >= out[1]), 1)


class SampleTransform:
    """Decode one batch of rows and apply the v2 pipeline; runs in DataLoader workers.

    An image that cannot be decoded (or is refused, or that the pipeline cannot
    transform) becomes a black placeholder marked invalid, its `file` naming it and
    what went wrong: the main process raises a clear error or skips it, and every
    process still runs the same batches (no rank falls out of step).
    `scaled`: JPEGs decoded at a reduced scale where the pipeline's first step allows (CropFirst).
    """

    def __init__(
        self, pipeline, to_rgb: bool, max_pixels: int = MAX_IMAGE_PIXELS, encode_labels=None, scaled: bool = False
    ):
        self.pipeline = pipeline
        self.to_rgb, self.max_pixels = to_rgb, max_pixels
        # batch -> labels (hfcls.data.columns.label_encoder): class ids, or multi-hot vectors
        self.encode_labels = encode_labels
        self.crop_first = CropFirst(pipeline)  # shares its steps with `pipeline`: set_size resizes both
        self.scaled = scaled and self.crop_first.head is not None

    def set_size(self, side: int | None) -> None:
        """The training crop's side for the coming batches (data.progressive_resizing)."""
        self.crop_first.set_size(side)

    def transform(self, image: dict) -> torch.Tensor:
        if not self.scaled:
            return self.pipeline(decode(image, self.to_rgb, self.max_pixels))
        data = image_bytes(image)
        with _header(data, self.max_pixels) as pil:
            return self.crop_first(data, pil, self.to_rgb)

    def __call__(self, batch: dict) -> dict:
        images, valid, names = [], [], []
        for image in batch["image"]:
            name = image.get("path") or "<in-memory image>"
            try:
                images.append(self.transform(image))
                valid.append(True)
            except DECODE_ERRORS as error:
                logger.warning("cannot decode image %s: %s", name, error)
                images.append(self.pipeline(torch.zeros(3, 256, 256, dtype=torch.uint8)))
                valid.append(False)
                name = f"{name} ({error})"  # the main process's message says why
            names.append(name)
        labels = self.encode_labels(batch) if self.encode_labels is not None else batch["label"]
        return {"pixel_values": images, "labels": labels, "valid": valid, "file": names}


def collate(samples: list) -> dict:
    """Stack uint8 images, labels (class ids, or multi-hot vectors) and the valid-image mask;
    list undecodable files."""
    return {
        "pixel_values": torch.stack([s["pixel_values"] for s in samples]),
        "labels": stack_labels([s["labels"] for s in samples]),
        "valid": torch.tensor([s["valid"] for s in samples], dtype=torch.bool),
        "bad_files": [s["file"] for s in samples if not s["valid"]],
    }


def check_bad_images(batch: dict, skip: bool, seen: list) -> None:
    """Raise on a batch's undecodable image unless data.skip_bad_images; list those skipped in `seen`."""
    if batch["bad_files"] and not skip:
        raise HfclsError(
            f"cannot decode image {batch['bad_files'][0]}; remove or replace it, "
            "or set data.skip_bad_images=true to skip such files"
        )
    seen.extend(batch["bad_files"])


def stack_labels(labels: list) -> torch.Tensor:
    """Class ids -> an int64 (N,) tensor; multi-hot vectors -> a float (N, C) tensor."""
    if labels and isinstance(labels[0], torch.Tensor):
        return torch.stack(labels)
    return torch.tensor(labels, dtype=torch.long)
