"""One pass of a model over a batch or a whole loader: class scores, and on request the features,
from the same forward calls. Validation during training, hfcls-eval, hfcls.pipeline, hfcls-demo,
hfcls-bench, hfcls-cam and hfcls-export's check all predict here.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, fields

import torch
from tqdm.auto import tqdm

from hfcls.data.decode import check_bad_images
from hfcls.labels import problem_type_of_model
from hfcls.predict.features import head_inputs
from hfcls.predict.inputs import ModelInputs
from hfcls.predict.scores import class_scores
from hfcls.predict.tta import views

logger = logging.getLogger(__name__)


@dataclass
class Predictions:
    """What a model gives for a batch or a split: one row per image, on the CPU (a batch's: on the
    model's device)."""

    scores: torch.Tensor  # (N, C) softmax, or one sigmoid per class for a multi-label model
    logits: torch.Tensor | None = None  # (N, C), without TTA (its views have no single logit)
    features: torch.Tensor | None = None  # (N, D) the head's input, when asked for
    labels: torch.Tensor | None = None  # a loader's: class ids (N,), or multi-hot (N, C)
    valid: torch.Tensor | None = None  # a loader's: False for an undecodable (skipped) image

    def present(self) -> dict:
        return {field.name: value for field in fields(self) if (value := getattr(self, field.name)) is not None}


def forward_batch(
    model, pixels: torch.Tensor, inputs: ModelInputs, problem_type: str, *, tta: tuple = (), features: bool = False
) -> Predictions:
    """Scores of a uint8 batch: the mean over the `tta` views of each view's class scores (hfcls.predict.tta);
    with `features`, the head's input for the batch itself (the first view), read on the way."""
    images = inputs(pixels)
    with head_inputs(model) if features else nullcontext([]) as seen, inputs.autocast():
        logits = [model(pixel_values=view).logits.float() for view in views(images, tta)]
    scores = torch.stack([class_scores(view, problem_type) for view in logits]).mean(dim=0)
    return Predictions(scores, None if tta else logits[0], seen[0].flatten(1).float() if features else None)


@torch.inference_mode()
def predict(
    model,
    batches,
    inputs: ModelInputs,
    *,
    accelerator=None,
    tta: tuple = (),
    features: bool = False,
    skip_bad_images: bool = False,
    desc: str = "predict",
) -> Predictions:
    """Predictions with labels and the valid-image mask for every batch of a loader, in its order.

    With an `accelerator`, every process's share is gathered with `gather_for_metrics`, which
    drops the samples Accelerate repeated to even out the last batches: each counts once.
    """
    model.eval()
    problem_type = problem_type_of_model(accelerator.unwrap_model(model) if accelerator else model)
    parts, bad = [], []
    quiet = accelerator is not None and not accelerator.is_main_process
    for batch in tqdm(batches, desc=desc, leave=False, disable=quiet):
        check_bad_images(batch, skip_bad_images, bad)
        out = forward_batch(model, batch["pixel_values"], inputs, problem_type, tta=tta, features=features)
        part = {**out.present(), "labels": batch["labels"], "valid": batch["valid"]}
        part = accelerator.gather_for_metrics(part) if accelerator is not None else part
        parts.append({name: value.cpu() for name, value in part.items()})
    if bad:
        logger.warning("skipped %d undecodable images, first: %s", len(bad), bad[0])
    return Predictions(**{name: torch.cat([part[name] for part in parts]) for name in parts[0]})
