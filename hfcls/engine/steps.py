"""One training step and one prediction pass: the work on batches, shared by training,
evaluation and hfcls-bench (which times exactly these).

Batches arrive as uint8 images; `Normalize` turns them into float on the device.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hfcls.data.transforms import Normalize
from hfcls.engine.losses import bce
from hfcls.errors import HfclsError
from hfcls.metrics import MULTI_LABEL_METRICS, evaluate_metrics

logger = logging.getLogger(__name__)


def model_inputs(batch: dict, normalize: Normalize, channels_last: bool) -> torch.Tensor:
    images = normalize(batch["pixel_values"])
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def train_step(run, batch: dict, admits=lambda loss: True) -> torch.Tensor | None:
    """Forward, loss, backward and the optimizer and LR steps (when accumulation is complete).

    `admits(loss)` is the NaN guard's verdict; a step it refuses is skipped (the
    schedule still advances, so it stays on time). Returns the loss, or None if skipped.
    """
    accelerator, model, optimizer, train = run.accelerator, run.model, run.optimizer, run.recipe.train
    with accelerator.accumulate(model):
        logits = model(pixel_values=model_inputs(batch, run.normalize, train.channels_last)).logits
        loss = run.loss(logits, batch["labels"], batch["valid"])
        admitted = admits(loss)
        if admitted:
            accelerator.backward(loss)
            if accelerator.sync_gradients and train.clip_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), train.clip_grad_norm)
            optimizer.step()
        if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
            run.scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return loss.detach() if admitted else None


def check_bad_images(batch: dict, skip: bool, seen: list) -> None:
    """Raise on an undecodable image unless data.skip_bad_images; count those skipped."""
    if batch["bad_files"] and not skip:
        raise HfclsError(f"cannot decode image {batch['bad_files'][0]}; remove or replace it, "
                         "or set data.skip_bad_images=true to skip such files")
    seen.extend(batch["bad_files"])


def predict_batch(model, batch: dict, normalize: Normalize, channels_last: bool) -> torch.Tensor:
    """Float logits of one batch (call under inference mode)."""
    return model(pixel_values=model_inputs(batch, normalize, channels_last)).logits.float()


@torch.inference_mode()
def predict(model, loader, accelerator, normalize: Normalize, channels_last=False, skip_bad_images=False,
            desc="eval"):
    """Logits, labels and a valid-image mask for the whole split, on every process.

    `gather_for_metrics` drops the samples Accelerate repeated to even out the
    last batches, so each sample counts exactly once.
    """
    model.eval()
    logits, labels, valid, bad = [], [], [], []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not accelerator.is_main_process):
        check_bad_images(batch, skip_bad_images, bad)
        out = predict_batch(model, batch, normalize, channels_last)
        gathered = accelerator.gather_for_metrics((out, batch["labels"], batch["valid"]))
        for store, value in zip((logits, labels, valid), gathered):
            store.append(value.cpu())
    if bad:
        logger.warning("skipped %d undecodable images, first: %s", len(bad), bad[0])
    return torch.cat(logits), torch.cat(labels), torch.cat(valid)


def validation_metrics(logits, labels, valid, topk) -> dict:
    """What training logs at each evaluation: the loss and top-k accuracy; for multi-hot labels
    the binary cross-entropy, mAP and the CP/CR/CF1/OP/OR/OF1 at the 0.5 threshold."""
    if not valid.any():
        raise HfclsError("no validation image could be decoded: every one was skipped (data.skip_bad_images); "
                         "check the validation data")
    logits, labels = logits[valid], labels[valid]
    if labels.ndim == 2:
        metrics = {"loss": bce(logits, labels, 0.0, None).mean().item()}
        scalars = evaluate_metrics(MULTI_LABEL_METRICS, logits.sigmoid(), labels)
        # Per-class lists go to hfcls-eval's table; metrics.jsonl and the trackers take numbers.
        metrics.update({name: value for name, value in scalars.items() if not isinstance(value, list)})
        return metrics
    metrics = {"loss": F.cross_entropy(logits, labels).item()}
    metrics.update(evaluate_metrics(["accuracy"], logits.softmax(dim=1), labels, topk=topk))
    return metrics
