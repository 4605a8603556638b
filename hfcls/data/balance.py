"""Class-balanced sampling weights (`data.sampler: class_balanced`), for single- and multi-label data.

Each class c gets a repeat factor from f(c), the fraction of training images
that show it; each image gets the largest factor among its classes (1 for an
image without any), as MMClassification's `ClassBalancedDataset` computes them:

    data.oversample_thr: t   r(c) = max(1, sqrt(t / f(c)))    classes rarer than t drawn more often
    unset                    r(c) = 1 / f(c)                  inverse frequency: every class equally often

Where MMClassification repeats each image ceil(r) times (a longer epoch), hfcls
draws each epoch's images with replacement in proportion to r
(`hfcls.data.seeding.balanced_rows`): the epoch keeps its length and the LR
schedule its steps, and the same weights serve every loader kind.
"""

from __future__ import annotations

import datasets
import numpy as np
import torch

from hfcls.data.columns import NO_LABEL, class_names, is_multi_label
from hfcls.errors import HfclsError


def label_sets(ds) -> list:
    """Per row, the classes it shows (none for an unlabeled row), from the label column alone."""
    if isinstance(ds, datasets.IterableDataset):
        raise HfclsError(
            "data.sampler: class_balanced and train.class_weights: balanced count the training labels, "
            "which a stream (streaming: true) cannot give up front; use a map-style source, or give "
            "train.class_weights as a list"
        )
    labels = ds.with_format(None)["label"]
    if is_multi_label(ds.features):
        return [sorted(set(row)) for row in labels]
    return [[label] if label != NO_LABEL else [] for label in labels]


def class_counts(ds, rows: list | None = None) -> np.ndarray:
    """Images showing each class (an image counts once per class)."""
    counts = np.zeros(len(class_names(ds)), dtype=np.int64)
    for classes in label_sets(ds) if rows is None else rows:
        counts[classes] += 1
    return counts


def sample_weights(ds, oversample_thr: float | None) -> torch.Tensor:
    """Each row's repeat factor r(I), by the rule of this module's docstring."""
    rows = label_sets(ds)
    frequency = class_counts(ds, rows) / len(rows)
    with np.errstate(divide="ignore"):  # a class no image shows is never looked up
        factors = 1 / frequency if oversample_thr is None else np.maximum(1.0, np.sqrt(oversample_thr / frequency))
    return torch.tensor([max((factors[c] for c in classes), default=1.0) for classes in rows], dtype=torch.float64)
