"""Logits -> class scores, and the classes a multi-label model predicts.

Tensor methods only, no torch import: evaluation's results files read these without the
commands that write them loading torch before their flags are parsed.
"""

from __future__ import annotations

from hfcls.labels import MULTI_LABEL


def class_scores(logits, problem_type: str):
    """Per-class scores: a softmax over the classes, or one sigmoid per class for a multi-label model."""
    return logits.sigmoid() if problem_type == MULTI_LABEL else logits.softmax(dim=-1)


def classes_above(scores, threshold: float) -> list:
    """What a multi-label model predicts for one image: [(class id, score)] of every class
    scoring >= `threshold`, best first (ties in class order)."""
    order = scores.argsort(descending=True, stable=True)
    return [(int(i), float(scores[i])) for i in order if scores[i] >= threshold]
