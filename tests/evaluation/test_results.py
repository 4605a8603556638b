"""Results files: every format round-trips; per-sample records, an undecodable image without a prediction."""

import pytest
import torch

from hfcls.errors import HfclsError
from hfcls.evaluation.results import check_results_path, prediction_records, read_results, write_results


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml", ".pkl", ".pickle"])
def test_every_out_format_round_trips(best_results, tmp_path, suffix):
    path = tmp_path / f"results{suffix}"
    write_results(path, best_results)
    assert read_results(path) == best_results
    assert not list(tmp_path.glob("*.tmp"))


def test_records_follow_the_items_and_skip_invalid_images():
    scores = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.25, 0.25]])
    labels, valid = torch.tensor([0, 1, 2]), torch.tensor([True, True, False])
    records = prediction_records(scores, labels, valid, ["a", "b", "c"], {"pred", "class_scores"})
    assert records[0] == {
        "gt_label": 0,
        "pred_label": 0,
        "pred_class": "a",
        "pred_score": pytest.approx(0.7),
        "class_scores": pytest.approx([0.7, 0.2, 0.1]),
    }
    assert (records[1]["pred_label"], records[1]["pred_class"]) == (2, "c")
    assert records[2] == {
        "gt_label": 2,
        "pred_label": None,
        "pred_class": None,
        "pred_score": None,
        "class_scores": None,
    }
    assert prediction_records(scores, labels, valid, ["a", "b", "c"], {"class_scores"})[0].keys() == {
        "gt_label",
        "class_scores",
    }


def test_a_results_path_that_cannot_be_written_is_refused_first(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(HfclsError, match="unknown extension"):
        check_results_path(tmp_path / "r.csv")
    with pytest.raises(HfclsError, match="cannot write there"):
        check_results_path(tmp_path / "file" / "r.json")
    check_results_path(tmp_path / "new" / "folders" / "r.json")
