"""The input adapter: how a uint8 batch becomes what a model takes, the same for every forward pass.

Per-sample work (decode, resize, crop) happens on uint8 tensors in DataLoader workers; the
conversion to float, the normalisation, the memory format and the autocast happen here, once
per batch on the model's device. `ModelInputs` is built from the recipe (training, hfcls-eval,
hfcls-bench) or from an exported preprocessor (hfcls.pipeline, hfcls-demo, hfcls-export's
check, hfcls-cam), so a model's exported preprocessing and hfcls's own cannot drift apart.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from hfcls.data.decode import MAX_IMAGE_PIXELS
from hfcls.data.transforms import build_pipeline, eval_pipeline_from_preprocessor


class Normalize(torch.nn.Module):
    """uint8 NCHW batch -> normalised float batch, on whatever device the batch is on."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) * 255, persistent=False)

    def forward(self, images: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        mean, std = self.mean.to(images.device, dtype), self.std.to(images.device, dtype)
        # One float copy, normalised in place: half the memory traffic of (x - mean) / std.
        return images.to(dtype, copy=True).sub_(mean).div_(std)


def autocast_dtype(mixed_precision: str, device_type: str) -> torch.dtype | None:
    """The dtype a forward pass computes in under train.mixed_precision, as Accelerate's autocast
    chooses it: bf16 on any device, fp16 on CUDA only (Accelerate runs fp16 on a CPU in fp32)."""
    if mixed_precision == "bf16":
        return torch.bfloat16
    return torch.float16 if mixed_precision == "fp16" and device_type == "cuda" else None


class ModelInputs:
    """uint8 batches -> normalised float batches on `device`, channels_last when asked, and the
    autocast the forward pass runs under."""

    def __init__(self, mean, std, device="cpu", *, channels_last: bool = False, mixed_precision: str = "no"):
        self.device = torch.device(device)
        self.normalize = Normalize(mean, std).to(self.device)
        self.channels_last = channels_last
        self.autocast_dtype = autocast_dtype(mixed_precision, self.device.type)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        images = self.normalize(pixels.to(self.device, non_blocking=True))
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def place(self, model):
        """`model` on the inputs' device, in their memory format."""
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


def recipe_inputs(recipe, device) -> ModelInputs:
    """What training, hfcls-eval and hfcls-bench feed a model: data.mean/std, train.channels_last and
    train.mixed_precision."""
    return ModelInputs(
        recipe.data.mean,
        recipe.data.std,
        device,
        channels_last=recipe.train.channels_last,
        mixed_precision=recipe.train.mixed_precision,
    )


def exported_inputs(
    processor_config: dict,
    where: str,
    device="cpu",
    *,
    channels_last: bool = False,
    mixed_precision: str = "no",
    max_pixels: int = MAX_IMAGE_PIXELS,
):
    """(uint8 eval transform, ModelInputs) equal to an exported preprocessor: what the model saw in evaluation.
    A resize to more than `max_pixels` pixels is refused before anything is allocated."""
    specs, mean, std = eval_pipeline_from_preprocessor(processor_config, where, max_pixels)
    inputs = ModelInputs(mean, std, device, channels_last=channels_last, mixed_precision=mixed_precision)
    return build_pipeline(specs, "eval transforms"), inputs
