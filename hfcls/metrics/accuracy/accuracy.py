"""Top-k accuracy as MMClassification computes it (percent), optionally under score thresholds.

A sample counts as correct at k when its label is among its k highest scores
and, with a threshold, that label's score is above the threshold.
"""

import datasets
import evaluate
import numpy as np

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
        info = evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({
                "predictions": datasets.Sequence(datasets.Value("float32")),
                "references": datasets.Value("int64"),
            }),
        )
        # Read the inputs back as arrays, not Python lists (100x faster on big splits);
        # set after construction, whose check allows "numpy" only for scalar features.
        info.format = "numpy"
        return info

    def _compute(self, predictions, references, topk=(1, 5), thrs=(None,)):
        scores = np.asarray(predictions, dtype=np.float32)
        labels = np.asarray(references)
        num_classes = scores.shape[1]
        # Ranked class ids, best first; a stable sort keeps ties in class order.
        ranked = np.argsort(-scores, axis=1, kind="stable")[:, : min(max(topk), num_classes)]
        ranked_scores = np.take_along_axis(scores, ranked, axis=1)
        hits = ranked == labels[:, None]
        results = {}
        for k in topk:
            k_hits = hits[:, : min(k, num_classes)]
            for thr in thrs:
                kept = k_hits if thr is None else k_hits & (ranked_scores[:, : k_hits.shape[1]] > thr)
                name = f"accuracy_top{k}" if thr is None else f"accuracy_top{k}_thr-{thr:.2f}"
                results[name] = 100.0 * float(kept.any(axis=1).mean())
        return results
