"""Classification metrics on gathered predictions."""

from __future__ import annotations

import torch


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, topk=(1, 5)) -> dict:
    """{'accuracy_top1': percent, ...}; k larger than the class count is clipped to it."""
    out = {}
    num_classes = logits.shape[1]
    ranked = logits.topk(min(max(topk), num_classes), dim=1).indices
    for k in topk:
        hits = (ranked[:, : min(k, num_classes)] == labels[:, None]).any(dim=1)
        out[f"accuracy_top{k}"] = 100.0 * hits.float().mean().item()
    return out
