"""Training losses: `train.loss` chooses one (by default the problem type's), `train.class_weights`
and `train.label_smoothing` shape it.

    type            problem        what
    cross_entropy   single-label   softmax cross-entropy (the single-label default)
    focal           both           focal loss (Lin et al. 2017), `gamma` (2): on the softmax, or on each
                                   class's sigmoid (with `alpha`, unset by default, as torchvision's alpha)
    bce             multi-label    binary cross-entropy with logits (the multi-label default)
    asl             multi-label    asymmetric loss (Ben-Baruch et al. 2021): `gamma_pos` (0), `gamma_neg` (4),
                                   `clip` (0.05), the probability shift of the negatives

Targets are class ids, soft labels after MixUp/CutMix (batch, classes), or
multi-hot vectors in which -1 marks a class to ignore (a PASCAL VOC class
shown only by difficult objects, in evaluation batches). Label smoothing moves
every target eps of the way to uniform: (1 - eps) y + eps / K, with K the
classes of a softmax or the 2 outcomes of a sigmoid. A class weight w_c
scales class c's terms. Each image's loss is a sum over the classes of a
softmax loss and a mean over the (known) classes of a sigmoid loss, so `bce`
equals transformers' multi-label loss (BCEWithLogitsLoss); the batch's loss is
the mean over its valid images.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hfcls.errors import HfclsError
from hfcls.labels import MULTI_LABEL, SINGLE_LABEL
from hfcls.recipe.schema import LOSS_TYPES

EPS = 1e-8


# ----------------------------------------------------------------------------- per-image losses


def cross_entropy(logits, targets, smoothing: float, weights):
    return F.cross_entropy(logits, targets, weight=weights, reduction="none", label_smoothing=smoothing)


def softmax_focal(logits, targets, smoothing: float, weights, gamma: float = 2.0):
    log_p = logits.log_softmax(dim=1)
    soft = F.one_hot(targets, logits.shape[1]).float() if targets.ndim == 1 else targets
    terms = -smoothed(soft, smoothing, logits.shape[1]) * (1 - log_p.exp()) ** gamma * log_p
    return (terms if weights is None else terms * weights).sum(dim=1)


def bce(logits, targets, smoothing: float, weights):
    terms = F.binary_cross_entropy_with_logits(logits, smoothed(targets.clamp(min=0), smoothing, 2), reduction="none")
    return mean_over_known(terms, targets, weights)


def sigmoid_focal(logits, targets, smoothing: float, weights, gamma: float = 2.0, alpha: float | None = None):
    y = smoothed(targets.clamp(min=0), smoothing, 2)
    p = logits.sigmoid()
    p_true = p * y + (1 - p) * (1 - y)
    terms = F.binary_cross_entropy_with_logits(logits, y, reduction="none") * (1 - p_true) ** gamma
    if alpha is not None:
        terms = terms * (alpha * y + (1 - alpha) * (1 - y))
    return mean_over_known(terms, targets, weights)


def asl(logits, targets, smoothing: float, weights, gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05):
    y = smoothed(targets.clamp(min=0), smoothing, 2)
    p = logits.sigmoid()
    p_shifted = (p - clip).clamp(min=0)  # easy negatives (p <= clip) count for nothing
    positive = (1 - p) ** gamma_pos * F.logsigmoid(logits)
    negative = p_shifted**gamma_neg * torch.log((1 - p_shifted).clamp(min=EPS))
    return mean_over_known(-(y * positive + (1 - y) * negative), targets, weights)


def smoothed(targets, smoothing: float, outcomes: int):
    return targets if smoothing == 0 else targets * (1 - smoothing) + smoothing / outcomes


def mean_over_known(terms, targets, weights):
    """Each image's mean over its classes, leaving out those marked -1; class c's term weighted by w_c."""
    known = (targets >= 0).float()
    if weights is not None:
        terms = terms * weights
    return (terms * known).sum(dim=1) / known.sum(dim=1).clamp(min=1)


# loss type -> {problem type: its per-image loss}, whose keyword options are LOSS_TYPES's
LOSSES = {
    "cross_entropy": {SINGLE_LABEL: cross_entropy},
    "focal": {SINGLE_LABEL: softmax_focal, MULTI_LABEL: sigmoid_focal},
    "bce": {MULTI_LABEL: bce},
    "asl": {MULTI_LABEL: asl},
}
DEFAULT_LOSS = {SINGLE_LABEL: "cross_entropy", MULTI_LABEL: "bce"}


# ----------------------------------------------------------------------------- the training loss


class TrainingLoss:
    """loss(logits, targets, valid) -> the mean over the valid images of the chosen per-image loss."""

    def __init__(self, per_image, options: dict, label_smoothing: float, class_weights: torch.Tensor | None):
        self.per_image, self.options = per_image, options
        self.label_smoothing, self.class_weights = label_smoothing, class_weights

    def __call__(self, logits, targets, valid) -> torch.Tensor:
        weights = None if self.class_weights is None else self.class_weights.to(logits.device)
        losses = self.per_image(logits.float(), targets, self.label_smoothing, weights, **self.options)
        return (losses * valid).sum() / valid.sum().clamp(min=1)


def loss_function(spec: dict | None, problem_type: str):
    """(per-image loss, its options) for train.loss, validated with the recipe (hfcls.recipe.settings),
    on the data's problem type: whether the type trains it, and with these options, is known only now."""
    spec = dict(spec or {"type": DEFAULT_LOSS[problem_type]})
    kind = spec.pop("type")
    labels = "multi-label (lists of classes)" if problem_type == MULTI_LABEL else "single-label"
    if problem_type not in LOSSES[kind]:
        fits = [name for name, kinds in LOSSES.items() if problem_type in kinds]
        raise HfclsError(
            f"train.loss.type {kind} does not train a {labels} model; use {' or '.join(fits)}"
            + ("" if problem_type == MULTI_LABEL else ", or set model.problem_type: multi_label_classification")
        )
    takes = LOSS_TYPES[kind][problem_type]
    for key in spec:
        if key not in takes:
            raise HfclsError(f"train.loss: {kind} on {labels} data takes {', '.join(takes) or 'no options'}, not {key}")
    return LOSSES[kind][problem_type], spec


def class_weights(setting, counts: np.ndarray | None, names: list) -> torch.Tensor | None:
    """train.class_weights as one weight per class; `balanced` from the training images per class."""
    if setting is None:
        return None
    if setting == "balanced":
        absent = [name for name, count in zip(names, counts) if count == 0]
        if absent:
            raise HfclsError(
                f"train.class_weights: balanced: class {absent[0]} has no training images; give the weights as a list"
            )
        return torch.tensor(counts.sum() / (len(names) * counts), dtype=torch.float32)
    if len(setting) != len(names):
        raise HfclsError(
            f"train.class_weights lists {len(setting)} weights for the data's {len(names)} classes "
            f"({', '.join(names[:10])}); give one per class, in that order"
        )
    return torch.tensor(setting, dtype=torch.float32)


def build_loss(train_section, problem_type: str, counts: np.ndarray | None, names: list) -> TrainingLoss:
    per_image, options = loss_function(train_section.loss, problem_type)
    return TrainingLoss(
        per_image, options, train_section.label_smoothing, class_weights(train_section.class_weights, counts, names)
    )
