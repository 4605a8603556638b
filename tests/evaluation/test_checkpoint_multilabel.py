"""evaluate_checkpoint of a multi-label model: its metrics against scikit-learn on the written scores,
the per-class table, predictions as label sets, and the one-line refusals of mismatched kinds."""

import re

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_fscore_support

from hfcls.errors import HfclsError
from hfcls.evaluation.checkpoint import evaluate_checkpoint
from hfcls.evaluation.report import format_table
from hfcls.evaluation.request import EvalRequest
from hfcls.evaluation.results import read_results
from hfcls.metrics import MULTI_LABEL_METRICS
from hfcls.recipe import load_recipe

pytestmark = pytest.mark.xdist_group("multilabel_eval")  # one worker builds the module's fixture, once


@pytest.fixture(scope="module")
def results(multilabel_run, tmp_path_factory):
    recipe, work = multilabel_run
    out = tmp_path_factory.mktemp("ml") / "r.yaml"
    returned = evaluate_checkpoint(
        EvalRequest(
            load_recipe(recipe),
            work / "checkpoints" / "epoch_2",
            metrics=MULTI_LABEL_METRICS,
            metric_options={"thrs": [0.4]},
            out=out,
            out_items=("metrics", "pred", "class_scores"),
        )
    )
    return returned, read_results(out)


def test_metrics_equal_sklearn_on_the_written_scores(results):
    returned, written = results
    records = written["predictions"]
    assert len(records) == returned.samples == 12
    scores = np.array([r["class_scores"] for r in records])
    truth = np.zeros_like(scores, dtype=int)
    for row, record in zip(truth, records):
        row[record["gt_label"]] = 1
    metrics = written["metrics"]
    expected_ap = [100 * average_precision_score(truth[:, c], scores[:, c]) for c in range(3)]
    np.testing.assert_allclose(metrics["AP_classwise"], expected_ap, rtol=1e-6)
    assert metrics["mAP"] == pytest.approx(np.mean(expected_ap), rel=1e-6)
    predicted = scores >= 0.4  # thrs=0.4: named by its threshold
    for names, average in ((("CP", "CR", "CF1"), "macro"), (("OP", "OR", "OF1"), "micro")):
        values = precision_recall_fscore_support(truth, predicted, average=average, zero_division=0)[:3]
        assert [metrics[f"{n}_thr-0.40"] for n in names] == pytest.approx(100 * np.asarray(values))
    # Each prediction: the classes at or above the threshold, best first.
    for record, row in zip(records, scores):
        assert record["pred_label"] == [c for c in np.argsort(-row, kind="stable") if row[c] >= 0.4]
        assert record["pred_class"] == [["cat", "dog", "fox"][c] for c in record["pred_label"]]


def test_the_table_lists_every_class(results):
    returned, _ = results
    table = format_table(returned.metrics, returned.class_names)
    rows = [line for line in table.splitlines() if line.startswith("| fox ")]
    assert len(rows) == 1 and f"{returned.metrics['AP_classwise'][2]:.2f}" in rows[0]
    assert "| class | AP_classwise | recall_classwise_thr-0.40 |" in table


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"metrics": ["accuracy"]}, "metric accuracy counts one class per image, but data.val is multi-label"),
        (
            {"metrics": ["mAP"], "show_dir": "x"},
            "show_dir draws a confusion matrix, which a multi-label model has none",
        ),
    ],
)
def test_a_multi_label_model_refuses_single_label_reports(multilabel_run, kwargs, message):
    recipe, work = multilabel_run
    with pytest.raises(HfclsError, match=re.escape(message)):
        evaluate_checkpoint(EvalRequest(load_recipe(recipe), work / "best", **kwargs))


def test_kinds_of_model_and_data_must_meet(multilabel_run, two_epoch_run):
    """two_epoch_run: a single-label model of the same three classes."""
    recipe, _ = multilabel_run
    with pytest.raises(
        HfclsError, match=re.escape("data.val is multi-label (lists of classes) but the model is single-label")
    ):
        evaluate_checkpoint(EvalRequest(load_recipe(recipe), two_epoch_run / "best", metrics=["accuracy"]))
    with pytest.raises(
        HfclsError,
        match=re.escape("metric mAP is for multi-label data (lists of classes), but data.val has one class per image"),
    ):
        evaluate_checkpoint(
            EvalRequest(load_recipe(two_epoch_run / "recipe.yaml"), two_epoch_run / "best", metrics=["mAP"])
        )
