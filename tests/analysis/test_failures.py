"""hfcls-analyze's library: the grids hold the most confident mistakes and successes, the accuracy
per class and the confused pairs agree with the confusion matrix of the same evaluation."""

import csv

import pytest

from hfcls.analysis.failures import analyze, class_accuracy, confusion_pairs, scored_records
from hfcls.errors import HfclsError
from hfcls.evaluation.results import write_results


def test_grids_chart_and_pairs(best_results, tmp_path):
    write_results(tmp_path / "r.json", best_results)
    found = analyze(tmp_path / "r.json", tmp_path / "out", n=4)
    records = [r for r in best_results["predictions"] if r["pred_label"] is not None]
    matrix = best_results["metrics"]["confusion_matrix"]  # the oracle: the metric module's own count
    mistakes = sum(matrix[t][p] for t in range(10) for p in range(10) if t != p)
    assert found["mistakes"] == mistakes > 0 and found["images"] == len(records) == 360
    pairs = list(csv.reader(open(tmp_path / "out" / "confusion_pairs.csv")))[1:]
    assert {(t, p): int(c) for t, p, c in pairs} == {
        (str(t), str(p)): matrix[t][p] for t in range(10) for p in range(10) if t != p and matrix[t][p]
    }
    assert [int(c) for _, _, c in pairs] == sorted((int(c) for _, _, c in pairs), reverse=True)
    assert class_accuracy(records, 10) == pytest.approx([100 * matrix[c][c] / sum(matrix[c]) for c in range(10)])
    for name in ("failures", "successes", "per_class_accuracy"):
        assert found["written"][name].stat().st_size > 5000


def test_the_most_confident_mistakes_come_first(best_results):
    records = [r for r in best_results["predictions"] if r["pred_label"] is not None]
    top = confusion_pairs(records)[0]
    assert top[2] == max(c for _, _, c in confusion_pairs(records))


def test_results_without_scores_say_which_out_items(tmp_path):
    write_results(tmp_path / "m.json", {"metrics": {"accuracy_top1": 90.0}})
    with pytest.raises(HfclsError, match="no per-image predictions.*--out-items metrics pred"):
        scored_records(tmp_path / "m.json")
