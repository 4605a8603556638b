"""The shipped evaluate metric modules against scikit-learn, on random predictions."""

import re

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, top_k_accuracy_score

from hfcls.errors import HfclsError
from hfcls.metrics import (
    METRICS,
    SINGLE_LABEL_METRICS,
    check_metric_names,
    check_metric_options,
    evaluate_metrics,
    given_metric_options,
    metric_option,
)

from conftest import REPO

NUM_CLASSES = 7


@pytest.fixture(scope="module")
def predictions():
    """Softmax scores and labels; class 6 never occurs as a label (zero-division cases)."""
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(301, NUM_CLASSES)) * 2
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, NUM_CLASSES - 1, size=301)
    return scores.astype(np.float32), labels


def sklearn_prfs(labels, predicted, average):
    values = precision_recall_fscore_support(
        labels, predicted, labels=range(NUM_CLASSES), zero_division=0, average=None if average == "none" else average
    )
    return dict(zip(("precision", "recall", "f1_score"), (100 * np.asarray(v) for v in values[:3])))


@pytest.mark.parametrize("average", ["macro", "micro", "none"])
def test_precision_recall_f1_support_equal_sklearn(predictions, average):
    scores, labels = predictions
    got = evaluate_metrics(["precision", "recall", "f1_score", "support"], scores, labels, average=average)
    suffix = {"macro": "", "micro": "_micro", "none": "_classwise"}[average]
    expected = sklearn_prfs(labels, scores.argmax(axis=1), average)
    for item, value in expected.items():
        np.testing.assert_allclose(got[item + suffix], value, rtol=1e-9, atol=1e-9)
    support = np.bincount(labels, minlength=NUM_CLASSES)
    assert got["support" + suffix] == (support.tolist() if average == "none" else len(labels))
    # Per-class recall comes with every average: the rare classes stay visible.
    np.testing.assert_allclose(got["recall_classwise"], sklearn_prfs(labels, scores.argmax(axis=1), "none")["recall"])


@pytest.mark.parametrize("average", ["macro", "micro", "none"])
def test_thresholds_make_low_scores_no_prediction(predictions, average):
    scores, labels = predictions
    thr = 0.5
    got = evaluate_metrics(["precision", "recall", "f1_score"], scores, labels, average=average, thrs=[None, thr])
    # Below the threshold a sample predicts no class: -1 is outside sklearn's labels.
    predicted = np.where(scores.max(axis=1) > thr, scores.argmax(axis=1), -1)
    assert (predicted == -1).sum() > 50  # the threshold matters on this data
    suffix = {"macro": "", "micro": "_micro", "none": "_classwise"}[average]
    for item, value in sklearn_prfs(labels, predicted, average).items():
        np.testing.assert_allclose(got[f"{item}{suffix}_thr-0.50"], value, rtol=1e-9, atol=1e-9)
    for item, value in sklearn_prfs(labels, scores.argmax(axis=1), average).items():
        np.testing.assert_allclose(got[item + suffix], value, rtol=1e-9, atol=1e-9)


def test_topk_accuracy_equals_sklearn(predictions):
    scores, labels = predictions
    got = evaluate_metrics(["accuracy"], scores, labels, topk=[1, 3, 5, 10])
    for k in (1, 3, 5):
        expected = 100 * top_k_accuracy_score(labels, scores, k=k, labels=range(NUM_CLASSES))
        assert got[f"accuracy_top{k}"] == pytest.approx(expected, abs=1e-9)
    assert got["accuracy_top10"] == 100.0  # k above the class count is clipped to it


def test_accuracy_threshold_counts_only_confident_hits(predictions):
    scores, labels = predictions
    got = evaluate_metrics(["accuracy"], scores, labels, **check_metric_options(topk=[1, 2], thrs=0.3))
    top1 = (scores.argmax(axis=1) == labels) & (scores.max(axis=1) > 0.3)
    label_scores = scores[np.arange(len(labels)), labels]
    rank = (scores > label_scores[:, None]).sum(axis=1)
    top2 = (rank < 2) & (label_scores > 0.3)
    assert got == pytest.approx(
        {"accuracy_top1_thr-0.30": 100 * top1.mean(), "accuracy_top2_thr-0.30": 100 * top2.mean()}
    )


def test_confusion_matrix_equals_sklearn(predictions):
    scores, labels = predictions
    got = evaluate_metrics(["confusion_matrix"], scores, labels)["confusion_matrix"]
    assert got == confusion_matrix(labels, scores.argmax(axis=1), labels=range(NUM_CLASSES)).tolist()


def parse_metric_options(pairs) -> dict:
    """--metric-options as hfcls-eval reads them."""
    return dict(map(metric_option, pairs))


def test_metric_options_parse_like_mmclassification():
    assert parse_metric_options(["topk=1,3", "average=none", "thrs=0.5,0.7"]) == {
        "topk": [1, 3],
        "average": "none",
        "thrs": [0.5, 0.7],
    }
    # Only the options given: the defaults (average=macro, the recipe's topk) are filled in later.
    assert parse_metric_options(["topk=(1,5)", "thrs=None"]) == {"topk": [1, 5], "thrs": [None]}
    assert parse_metric_options(["topk=2"]) == {"topk": [2]}
    assert parse_metric_options([]) == {}
    assert check_metric_options(topk=[1, 5]) == {"topk": [1, 5], "average": "macro", "thrs": [None]}


@pytest.mark.parametrize(
    "pairs, message",
    [
        (["top=1"], "expected one of topk=..., thrs=..., average=..."),
        (["average=weighted"], "average must be one of macro, micro, none, got 'weighted'"),
        (["topk=0"], "topk must be whole numbers of 1 or more"),
        (["thrs=high"], "thrs must be score thresholds from 0 to 1"),
        (["thrs=2"], "thrs must be score thresholds from 0 to 1"),
    ],
)
def test_bad_metric_options_are_named(pairs, message):
    with pytest.raises(HfclsError, match=re.escape(message)):
        given_metric_options(parse_metric_options(pairs))


def test_unknown_metric_lists_the_known_ones():
    with pytest.raises(
        HfclsError,
        match="unknown metric 'f1'.*known metrics: accuracy, precision, recall, "
        "f1_score, support, confusion_matrix, mAP, CP, CR, CF1, OP, OR, OF1",
    ):
        check_metric_names(["f1"])


def test_module_files_import_one_name_per_line():
    # evaluate's import scanner misreads `import a, b` and then refuses to load the module.
    for module in {METRICS[name] for name in METRICS}:
        source = (REPO / "hfcls" / "metrics" / module / f"{module}.py").read_text()
        assert not re.search(r"^\s*import \w[\w.]*\s*,", source, re.MULTILINE), module


def test_modules_loaded_with_evaluate_compute_what_hfcls_reports():
    """hfcls calls each module's computation directly (no Arrow copy); evaluate's own
    compute() must give the same, ties included (ranked in class order)."""
    from hfcls.metrics import load_metric

    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(400, NUM_CLASSES)).astype(np.float32) / 4  # many tied scores
    labels = rng.integers(0, NUM_CLASSES, size=400)
    calls = {
        "accuracy": {"topk": [1, 2, 5], "thrs": [None, 0.3]},
        "single_label": {
            "items": ["precision", "recall", "f1_score", "support"],
            "average": "macro",
            "thrs": [None, 0.3],
        },
        "confusion_matrix": {},
    }
    reported = evaluate_metrics(SINGLE_LABEL_METRICS, scores, labels, topk=[1, 2, 5], thrs=[None, 0.3])
    for module, options in calls.items():
        public = load_metric(module).compute(predictions=scores, references=labels, **options)
        assert public == {key: reported[key] for key in public}, module
    # Top-k under ties: a tied class ranks ahead of the label when its class id is lower.
    ranks = [
        (scores[i] > scores[i, labels[i]]).sum() + (scores[i, : labels[i]] == scores[i, labels[i]]).sum()
        for i in range(400)
    ]
    assert reported["accuracy_top2"] == pytest.approx(100 * np.mean(np.array(ranks) < 2))
