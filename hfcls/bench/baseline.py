"""The baseline hfcls-bench compares with: the pipeline the Hugging Face examples teach.

Per-sample PIL transforms through `with_transform`, ending in ToImage +
ToDtype(float32, scale) + Normalize in the worker; fp32, NCHW, a plain
DataLoader with the recipe's worker count, the model on the device without
Accelerate, and torch's default (non-fused) optimizer kernels.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from hfcls.data.build import worker_count
from hfcls.data.transforms import build_pipeline


def baseline_loader(ds, specs, data, batch_size, shuffle, seed):
    """PIL -> transforms -> float, normalised, per sample, in DataLoader workers."""
    pipeline = v2.Compose(
        [
            *build_pipeline(specs).transforms,
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(data.mean, data.std),
        ]
    )

    def preprocess(batch):
        return {"pixel_values": [pipeline(image.convert("RGB")) for image in batch["image"]], "labels": batch["label"]}

    def collate(samples):
        return {
            "pixel_values": torch.stack([s["pixel_values"] for s in samples]),
            "labels": torch.tensor([s["labels"] for s in samples]),
        }

    return torch.utils.data.DataLoader(
        ds.with_transform(preprocess),
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=collate,
        num_workers=worker_count(data),
        drop_last=shuffle,
        generator=torch.Generator().manual_seed(seed),
    )


def baseline_optimizer(model, optim) -> torch.optim.Optimizer:
    """The recipe's optimizer type and settings on every parameter, torch's default kernels."""
    params = model.parameters()
    if optim.type == "sgd":
        return torch.optim.SGD(
            params, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov, weight_decay=optim.weight_decay
        )
    cls = torch.optim.AdamW if optim.type == "adamw" else torch.optim.Adam
    return cls(params, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps, weight_decay=optim.weight_decay)


class BaselineStep:
    """One step as the examples write it: move the batch, forward, cross-entropy, backward, step."""

    def __init__(self, what, model, optimizer, device):
        self.what, self.model, self.optimizer, self.device = what, model, optimizer, device

    def __call__(self, batch):
        images = batch["pixel_values"].to(self.device, non_blocking=True)
        if self.what == "data":
            return images
        if self.what == "eval":
            with torch.inference_mode():
                return self.model(pixel_values=images).logits
        labels = batch["labels"].to(self.device, non_blocking=True)
        loss = torch.nn.functional.cross_entropy(self.model(pixel_values=images).logits, labels)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()
