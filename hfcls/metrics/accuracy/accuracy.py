"""Top-k accuracy as MMClassification computes it (percent), optionally under score thresholds.

A sample counts as correct at k when its label is among its k highest scores
and, with a threshold, that label's score is above the threshold.
"""

import evaluate
import numpy as np

from hfcls.metrics.scores import scores_metric_info

_DESCRIPTION = __doc__

_KWARGS_DESCRIPTION = """
Args:
    predictions: per-sample class scores (softmax probabilities), shape (N, C).
    references: per-sample true class ids, shape (N,).
    topk: the k values to report, e.g. [1, 5]; k above C is clipped to C.
    thrs: score thresholds; None means no threshold.
Returns:
    {"accuracy_top{k}": percent} per k, suffixed "_thr-{thr:.2f}" per threshold when thrs are given.
"""


class Accuracy(evaluate.Metric):
    def _info(self):
        return scores_metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references, topk=(1, 5), thrs=(None,)):
        scores = np.asarray(predictions, dtype=np.float32)
        labels = np.asarray(references)
        num_classes = scores.shape[1]
        # The label's rank among its sample's scores, best first, ties in class order (a
        # stable sort's order): counting is O(N C) where sorting 1,000 classes is O(N C log C).
        label_scores = np.take_along_axis(scores, labels[:, None], axis=1)
        ahead = (scores > label_scores) | ((scores == label_scores) & (np.arange(num_classes) < labels[:, None]))
        rank = ahead.sum(axis=1)
        results = {}
        for k in topk:
            k_hits = rank < min(k, num_classes)
            for thr in thrs:
                kept = k_hits if thr is None else k_hits & (label_scores[:, 0] > thr)
                name = f"accuracy_top{k}" if thr is None else f"accuracy_top{k}_thr-{thr:.2f}"
                results[name] = 100.0 * float(kept.mean())
        return results
