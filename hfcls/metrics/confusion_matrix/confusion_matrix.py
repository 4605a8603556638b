"""Confusion matrix for single-label classification: entry [i][j] counts the
samples of true class i predicted as class j (the highest score)."""

import evaluate
import numpy as np

from hfcls.metrics.scores import scores_metric_info

_DESCRIPTION = __doc__

_KWARGS_DESCRIPTION = """
Args:
    predictions: per-sample class scores, shape (N, C).
    references: per-sample true class ids, shape (N,).
Returns:
    {"confusion_matrix": C x C nested list of counts}
"""


class ConfusionMatrix(evaluate.Metric):
    def _info(self):
        return scores_metric_info(_DESCRIPTION, _KWARGS_DESCRIPTION)

    def _compute(self, predictions, references):
        scores = np.asarray(predictions, dtype=np.float32)
        labels = np.asarray(references)
        num_classes = scores.shape[1]
        matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        np.add.at(matrix, (labels, scores.argmax(axis=1)), 1)
        return {"confusion_matrix": matrix.tolist()}
