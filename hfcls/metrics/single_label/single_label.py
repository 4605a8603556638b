"""Precision, recall, F1 score and support for single-label classification, as
MMClassification's SingleLabelMetric computes them (percent).

The predicted class is the highest-scoring one; under a threshold a prediction
whose score is not above it counts as no prediction (negative for every class).
Averages: "macro" (mean over classes), "micro" (over all samples), "none"
(one value per class). A class with no predictions (or no samples) scores 0.
"""

import evaluate
import numpy as np

from hfcls.metrics.scores import scores_metric_info

_DESCRIPTION = __doc__

_KWARGS_DESCRIPTION = """
Args:
    predictions: per-sample class scores (softmax probabilities), shape (N, C).
    references: per-sample true class ids, shape (N,).
    items: which of precision, recall, f1_score, support to report.
    average: "macro", "micro" or "none".
    thrs: score thresholds; None means no threshold.
Returns:
    {item: value} for macro, {item + "_micro": value} for micro, {item + "_classwise": [values]} for none;
    names suffixed "_thr-{thr:.2f}" per threshold when thrs are given.
"""

ITEMS = ("precision", "recall", "f1_score", "support")
SUFFIX = {"macro": "", "micro": "_micro", "none": "_classwise"}


class SingleLabel(evaluate.Metric):
    def _info(self):
        return scores_metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references, items=ITEMS, average="macro", thrs=(None,)):
        scores = np.asarray(predictions, dtype=np.float32)
        labels = np.asarray(references)
        num_classes = scores.shape[1]
        truth = np.eye(num_classes, dtype=bool)[labels]
        best = scores.argmax(axis=1)
        results = {}
        for thr in thrs:
            predicted = np.eye(num_classes, dtype=bool)[best]
            if thr is not None:
                predicted &= (scores.max(axis=1) > thr)[:, None]
            values = _precision_recall_f1_support(predicted, truth, average)
            suffix = SUFFIX[average] + ("" if thr is None else f"_thr-{thr:.2f}")
            for item in items:
                value = values[item]
                results[item + suffix] = value.tolist() if average == "none" else float(value)
        return results


def _precision_recall_f1_support(predicted, truth, average):
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
