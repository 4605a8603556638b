"""The multi-label metric module against scikit-learn, on tied scores, a class without positives
and ignored (difficult) entries; and the refusal of metrics of the other kind."""

import re
import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from hfcls.errors import HfclsError
from hfcls.metrics import MULTI_LABEL_METRICS, check_metric_kind, evaluate_metrics, load_metric

CLASSES = 6


@pytest.fixture(scope="module")
def multi_label():
    """Scores on a 5-level grid (many ties), ~35 % positives, class 5 never shown."""
    rng = np.random.default_rng(0)
    scores = (rng.integers(0, 5, size=(240, CLASSES)) / 4).astype(np.float32)
    targets = (rng.random((240, CLASSES)) < 0.35).astype(np.int64)
    targets[:, 5] = 0
    return scores, targets


def sklearn_ap(targets, scores):
    """Per class, on the entries that are not -1; 0 for a class without positives (sklearn warns)."""
    values = []
    for c in range(targets.shape[1]):
        known = targets[:, c] >= 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values.append(100 * average_precision_score(targets[known, c], scores[known, c]))
    return np.array(values)


def sklearn_counts(targets, predicted):
    """CP/CR/CF1 (per class on its known entries, then the mean) and OP/OR/OF1 (all known entries pooled)."""
    per_class = []
    for c in range(targets.shape[1]):
        known = targets[:, c] >= 0
        per_class.append(
            precision_recall_fscore_support(targets[known, c], predicted[known, c], average="binary", zero_division=0)[
                :3
            ]
        )
    known = targets >= 0
    overall = precision_recall_fscore_support(targets[known], predicted[known], average="binary", zero_division=0)[:3]
    cp, cr, cf1 = 100 * np.mean(per_class, axis=0)
    return {
        "CP": cp,
        "CR": cr,
        "CF1": cf1,
        **dict(zip(("OP", "OR", "OF1"), 100 * np.asarray(overall))),
        "recall_classwise": 100 * np.array(per_class)[:, 1],
    }


def assert_counts(got, expected, suffix=""):
    for name, value in expected.items():
        np.testing.assert_allclose(got[name + suffix], value, rtol=1e-9, atol=1e-9, err_msg=name + suffix)


def test_map_equals_sklearn_with_ties(multi_label):
    scores, targets = multi_label
    got = evaluate_metrics(["mAP"], scores, targets)
    expected = sklearn_ap(targets, scores)
    np.testing.assert_allclose(got["AP_classwise"], expected, rtol=1e-9, atol=1e-9)
    assert got["mAP"] == pytest.approx(expected.mean(), abs=1e-9)
    assert expected[5] == 0 and len(set(scores.ravel())) == 5


def test_map_matches_mmpretrain_documented_example():
    """AveragePrecision's docstring example in MMPretrain: 70.833 (no tied scores there)."""
    scores = np.array([[0.9, 0.8, 0.3, 0.2], [0.1, 0.2, 0.2, 0.1], [0.7, 0.5, 0.9, 0.3], [0.8, 0.1, 0.1, 0.2]])
    targets = np.array([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]])
    got = evaluate_metrics(["mAP"], scores, targets)
    assert got["mAP"] == pytest.approx(70.8333, abs=1e-3)
    np.testing.assert_allclose(got["AP_classwise"], [100, 83.3333, 100, 0], atol=1e-3)


def test_class_and_overall_counts_equal_sklearn_at_the_threshold(multi_label):
    scores, targets = multi_label
    got = evaluate_metrics(MULTI_LABEL_METRICS, scores, targets)
    assert_counts(got, sklearn_counts(targets, (scores >= 0.5).astype(np.int64)))
    # The module's whole-matrix form and sklearn's own multi-label averages agree too.
    for average, names in (("macro", ("CP", "CR", "CF1")), ("micro", ("OP", "OR", "OF1"))):
        values = precision_recall_fscore_support(targets, scores >= 0.5, average=average, zero_division=0)[:3]
        np.testing.assert_allclose([got[n] for n in names], 100 * np.asarray(values), rtol=1e-9)


def test_other_thresholds_and_top_k_are_named_by_their_rule(multi_label):
    scores, targets = multi_label
    got = evaluate_metrics(["CP", "CR", "CF1", "OP", "OR", "OF1"], scores, targets, thrs=[None, 0.75], topk=[2])
    assert_counts(got, sklearn_counts(targets, (scores >= 0.5).astype(np.int64)))
    assert_counts(got, sklearn_counts(targets, (scores >= 0.75).astype(np.int64)), "_thr-0.75")
    # Top-2 by rank, ties in class order: a class ranks behind higher scores and tied lower classes.
    ahead = (scores[:, None, :] > scores[:, :, None]) | (
        (scores[:, None, :] == scores[:, :, None])
        & (np.arange(CLASSES)[None, None, :] < np.arange(CLASSES)[None, :, None])
    )
    top2 = (ahead.sum(axis=2) < 2).astype(np.int64)
    assert top2.sum(axis=1).tolist() == [2] * len(scores)
    assert_counts(got, sklearn_counts(targets, top2), "_top2")
    # Only the top-k rule when topk is given alone.
    assert set(evaluate_metrics(["CP"], scores, targets, topk=[3])) == {"CP_top3"}


def test_ignored_entries_leave_every_count(multi_label):
    """-1 (a VOC class shown only by difficult objects) is neither a positive nor a negative."""
    scores, targets = multi_label
    targets = targets.copy()
    rng = np.random.default_rng(3)
    targets[rng.random(targets.shape) < 0.15] = -1
    got = evaluate_metrics(MULTI_LABEL_METRICS, scores, targets)
    np.testing.assert_allclose(got["AP_classwise"], sklearn_ap(targets, scores), rtol=1e-9, atol=1e-9)
    assert_counts(got, sklearn_counts(targets, (scores >= 0.5).astype(np.int64)))
    # As if those entries were not there: an ignored entry scored 1.0 changes nothing.
    scores = scores.copy()
    scores[targets == -1] = 1.0
    assert evaluate_metrics(MULTI_LABEL_METRICS, scores, targets) == got


def test_evaluate_compute_reports_the_same(multi_label):
    scores, targets = multi_label
    public = load_metric("multi_label").compute(
        predictions=scores, references=targets, items=MULTI_LABEL_METRICS, thrs=[None, 0.25], topk=[1]
    )
    assert public == evaluate_metrics(MULTI_LABEL_METRICS, scores, targets, thrs=[None, 0.25], topk=[1])


def test_metrics_of_the_other_kind_are_refused():
    with pytest.raises(
        HfclsError,
        match=re.escape(
            "metric accuracy counts one class per image, but the data is multi-label (lists of classes); use mAP, CP"
        ),
    ):
        check_metric_kind(["accuracy"], multi_label=True)
    with pytest.raises(
        HfclsError,
        match=re.escape(
            "metric mAP is for multi-label data (lists of classes), but the data has one class per image; use accuracy"
        ),
    ):
        check_metric_kind(["mAP"], multi_label=False)
