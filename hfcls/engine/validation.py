"""What training logs at each evaluation, from one prediction pass over the validation split."""

from __future__ import annotations

import torch.nn.functional as F

from hfcls.engine.losses import bce
from hfcls.errors import HfclsError
from hfcls.metrics import MULTI_LABEL_METRICS, evaluate_metrics
from hfcls.predict.forward import Predictions


def validation_metrics(predictions: Predictions, topk) -> dict:
    """The loss and top-k accuracy; for multi-hot labels the binary cross-entropy, mAP and the
    CP/CR/CF1/OP/OR/OF1 at the 0.5 threshold. Undecodable (skipped) images count nowhere."""
    valid = predictions.valid
    if not valid.any():
        raise HfclsError(
            "no validation image could be decoded: every one was skipped (data.skip_bad_images); "
            "check the validation data"
        )
    logits, scores, labels = predictions.logits[valid], predictions.scores[valid], predictions.labels[valid]
    if labels.ndim == 2:
        metrics = {"loss": bce(logits, labels, 0.0, None).mean().item()}
        scalars = evaluate_metrics(MULTI_LABEL_METRICS, scores, labels)
        # Per-class lists go to hfcls-eval's table; metrics.jsonl and the trackers take numbers.
        metrics.update({name: value for name, value in scalars.items() if not isinstance(value, list)})
        return metrics
    metrics = {"loss": F.cross_entropy(logits, labels).item()}
    metrics.update(evaluate_metrics(["accuracy"], scores, labels, topk=topk))
    return metrics
