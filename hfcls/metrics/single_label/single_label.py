"""Precision, recall, F1 score and support for single-label classification, as
MMClassification's SingleLabelMetric computes them (percent).

The predicted class is the highest-scoring one; under a threshold a prediction
whose score is not above it counts as no prediction (negative for every class).
Averages: "macro" (mean over classes), "micro" (over all samples), "none"
(one value per class). A class with no predictions (or no samples) scores 0.
Recall comes with its per-class values too (`recall_classwise`): on imbalanced
data the average hides the rare classes.
"""

import evaluate
import numpy as np

from hfcls.metrics.scores import precision_recall_f1_support, scores_metric_info

_DESCRIPTION = __doc__

_KWARGS_DESCRIPTION = """
Args:
    predictions: per-sample class scores (softmax probabilities), shape (N, C).
    references: per-sample true class ids, shape (N,).
    items: which of precision, recall, f1_score, support to report.
    average: "macro", "micro" or "none".
    thrs: score thresholds; None means no threshold.
Returns:
    {item: value} for macro, {item + "_micro": value} for micro, {item + "_classwise": [values]} for none
    (and "recall_classwise" whenever recall is asked for); names suffixed "_thr-{thr:.2f}" per threshold
    when thrs are given.
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
            values = precision_recall_f1_support(predicted, truth, average)
            threshold = "" if thr is None else f"_thr-{thr:.2f}"
            for item in items:
                value = values[item]
                results[item + SUFFIX[average] + threshold] = value.tolist() if average == "none" else float(value)
            if "recall" in items and average != "none":
                results["recall_classwise" + threshold] = precision_recall_f1_support(predicted, truth, "none")[
                    "recall"
                ].tolist()
        return results
