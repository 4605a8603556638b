"""Multi-label classification metrics, as MMPretrain's AveragePrecision and MultiLabelMetric
define them (percent).

- mAP: each class's average precision over the images ranked by its score, then the mean
  (AP_classwise: each class's). AP is scikit-learn's average_precision_score, sum over
  thresholds of (R_n - R_{n-1}) P_n, with tied scores forming one threshold. A class
  without positive images has an AP of 0.
- CP, CR, CF1: precision, recall and F1 of each class, then their means over the classes;
  OP, OR, OF1: the same from the counts pooled over all classes. A class is predicted
  when its score is >= a threshold (0.5 by default; names suffixed "_thr-0.30" for
  another), or is among the k highest scores of its image (topk=k; "_top3").
  Per-class recall comes too (recall_classwise).

A reference of -1 (a PASCAL VOC class shown only by difficult objects) is left out of
every count, as MMPretrain's VOC metrics do.
"""

import datasets
import evaluate
import numpy as np

from hfcls.metrics.scores import precision_recall_f1_support, scores_metric_info

_DESCRIPTION = __doc__

_KWARGS_DESCRIPTION = """
Args:
    predictions: per-sample class scores (sigmoid probabilities), shape (N, C).
    references: per-sample multi-hot labels, shape (N, C): 1 shown, 0 absent, -1 ignored.
    items: which of mAP, CP, CR, CF1, OP, OR, OF1 to report.
    thrs: score thresholds; None means 0.5.
    topk: k values for the top-k rule, or None.
Returns:
    {"mAP": percent, "AP_classwise": [percent per class], "CP": percent, ...}; CP..OF1 (and
    recall_classwise) once per rule, suffixed "_thr-{thr:.2f}" (a threshold other than 0.5) or "_top{k}".
"""

ITEMS = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")
COUNTED = {
    "CP": ("macro", "precision"),
    "CR": ("macro", "recall"),
    "CF1": ("macro", "f1_score"),
    "OP": ("micro", "precision"),
    "OR": ("micro", "recall"),
    "OF1": ("micro", "f1_score"),
}


class MultiLabel(evaluate.Metric):
    def _info(self):
        return scores_metric_info(
            _DESCRIPTION, _KWARGS_DESCRIPTION, references=datasets.Sequence(datasets.Value("int64"))
        )

    def _compute(self, predictions, references, items=ITEMS, thrs=(None,), topk=None):
        scores = np.asarray(predictions, dtype=np.float32)
        targets = np.asarray(references).astype(np.int64)
        results = {}
        if "mAP" in items:
            ap = 100.0 * average_precision(scores, targets)
            results.update({"mAP": float(ap.mean()), "AP_classwise": ap.tolist()})
        counted = [item for item in items if item in COUNTED]
        if not counted:
            return results
        known = targets >= 0
        truth = (targets == 1) & known
        for suffix, predicted in rules(scores, thrs, topk):
            predicted = predicted & known
            by_average = {
                average: precision_recall_f1_support(predicted, truth, average)
                for average in ("macro", "micro", "none")
            }
            for item in counted:
                average, value = COUNTED[item]
                results[item + suffix] = float(by_average[average][value])
            if "CR" in counted:
                results["recall_classwise" + suffix] = by_average["none"]["recall"].tolist()
        return results


def rules(scores, thrs, topk):
    """(name suffix, predicted classes) per rule: each threshold (None: 0.5, no suffix), each top-k."""
    found = {}
    if topk is None or any(thr is not None for thr in thrs):
        for thr in thrs:
            thr = 0.5 if thr is None else thr
            found["" if thr == 0.5 else f"_thr-{thr:.2f}"] = scores >= thr
    for k in topk or ():
        # The k best of each image; ties in class order, as a stable sort ranks them.
        best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        predicted = np.zeros(scores.shape, dtype=bool)
        np.put_along_axis(predicted, best, True, axis=1)
        found[f"_top{k}"] = predicted
    return found.items()


def average_precision(scores, targets):
    """Per class, scikit-learn's average_precision_score over the images whose target is not -1 -> (C,)."""
    order = np.argsort(-scores, axis=0, kind="stable")
    ranked = np.take_along_axis(scores, order, axis=0)
    ranked_targets = np.take_along_axis(targets, order, axis=0)
    tps = (ranked_targets == 1).cumsum(axis=0)
    fps = (ranked_targets == 0).cumsum(axis=0)
    # A threshold ends at the last image of each group of tied scores.
    end = np.ones(ranked.shape, dtype=bool)
    end[:-1] = ranked[:-1] != ranked[1:]
    # True positives gained since the previous threshold (tps never decreases).
    reached = np.maximum.accumulate(np.where(end, tps, 0), axis=0)
    gained = np.where(end, tps - np.vstack([np.zeros((1, tps.shape[1]), dtype=tps.dtype), reached[:-1]]), 0)
    precision = tps / np.maximum(tps + fps, 1)
    return (gained * precision).sum(axis=0) / np.maximum(tps[-1], 1)
