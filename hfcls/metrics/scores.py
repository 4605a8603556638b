"""What every shipped metric module shares: its inputs (per-sample class scores and true labels)
and the precision / recall / F1 counts of predicted against true classes."""

import datasets
import evaluate
import numpy as np


def scores_metric_info(description: str, inputs_description: str, references=None) -> evaluate.MetricInfo:
    """`references`: class ids (None, the default) or, for multi-label metrics, a Sequence of multi-hot values."""
    references = datasets.Value("int64") if references is None else references
    info = evaluate.MetricInfo(
        description=description,
        citation="",
        inputs_description=inputs_description,
        features=datasets.Features(
            {
                "predictions": datasets.Sequence(datasets.Value("float32")),
                "references": references,
            }
        ),
    )
    # Read the inputs back as arrays, not Python lists (100x faster on big splits);
    # set after construction, whose check allows "numpy" only for scalar features.
    info.format = "numpy"
    return info


def precision_recall_f1_support(predicted, truth, average):
    """Percent precision, recall and F1, and support, from (N, C) boolean predicted and true classes.

    "macro": per class, then the mean; "micro": the counts pooled over classes first;
    "none": per class. A class with no predictions (or no samples) scores 0.
    """
    tp = (predicted & truth).sum(axis=0)
    fp = (predicted & ~truth).sum(axis=0)
    fn = (~predicted & truth).sum(axis=0)
    support = truth.sum(axis=0)
    if average == "micro":  # pool the counts over classes first
        tp, fp, fn, support = tp.sum(), fp.sum(), fn.sum(), support.sum()
    precision = 100.0 * tp / np.maximum(tp + fp, 1)
    recall = 100.0 * tp / np.maximum(tp + fn, 1)
    f1_score = 2 * precision * recall / np.maximum(precision + recall, np.finfo(np.float32).eps)
    if average == "macro":
        precision, recall, f1_score, support = precision.mean(), recall.mean(), f1_score.mean(), support.sum()
    return {"precision": precision, "recall": recall, "f1_score": f1_score, "support": support}
