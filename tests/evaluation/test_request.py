"""EvalRequest: checked once, when it is made, into the forms the evaluation uses; an error about an
argument names the parameter (which hfcls-eval maps onto its flag)."""

import pytest

from hfcls.errors import HfclsError
from hfcls.evaluation.request import EvalRequest


def test_a_request_holds_its_checked_forms(tmp_path):
    request = EvalRequest(
        None,
        "best",
        metrics=["accuracy", "f1_score", "accuracy"],
        metric_options={"topk": 3, "thrs": 0.5},
        tta="crops,flip",
        out=tmp_path / "r.json",
    )
    assert request.metrics == ("accuracy", "f1_score")
    assert request.metric_options == {"topk": [3], "thrs": [0.5]}  # only those given: defaults depend on the model
    assert request.tta == ("flip", "crops") and request.out_items == ("metrics", "pred")
    with pytest.raises(AttributeError):
        request.split = "test"  # frozen


@pytest.mark.parametrize(
    "arguments, param, message",
    [
        ({"batch_size": 0}, "batch_size", "batch_size must be at least 1, got 0"),
        ({"tta": "flips"}, "tta", "tta: unknown view 'flips'"),
        ({"out_items": ["preds"]}, "out_items", "out_items: unknown preds"),
        ({"out": "/proc/r.json"}, "out", "out /proc/r.json: cannot write in /proc"),
        ({"show_dir": "/proc/show"}, "show_dir", "show_dir /proc/show: cannot write in /proc"),
        ({"metric_options": {"average": "weighted"}}, None, "metric option average must be one of macro, micro, none"),
        ({"metrics": ["acuracy"]}, None, "unknown metric 'acuracy'"),
    ],
)
def test_a_bad_argument_is_refused_when_the_request_is_made(arguments, param, message):
    with pytest.raises(HfclsError) as error:
        EvalRequest(None, "best", **{"metrics": ["accuracy"], **arguments})
    assert str(error.value).startswith(message) and error.value.param == param


def test_a_show_dir_holding_files_is_kept_unless_overwrite(tmp_path):
    (tmp_path / "confusion_matrix.png").write_bytes(b"")
    with pytest.raises(HfclsError, match=f"^show_dir {tmp_path} is a non-empty folder already") as error:
        EvalRequest(None, "best", metrics=["accuracy"], show_dir=tmp_path)
    assert error.value.for_flags({"show_dir": "--show-dir"}).startswith(f"--show-dir {tmp_path}")
    EvalRequest(None, "best", metrics=["accuracy"], show_dir=tmp_path, overwrite=True)
    with pytest.raises(HfclsError, match="^show_dir .*confusion_matrix.png is a file where a folder goes"):
        EvalRequest(None, "best", metrics=["accuracy"], show_dir=tmp_path / "confusion_matrix.png", overwrite=True)
    (tmp_path / "r.json").mkdir()  # empty: nothing to lose, yet no results file can go there
    with pytest.raises(HfclsError, match="^out .*r.json is a folder where a file goes"):
        EvalRequest(None, "best", out=tmp_path / "r.json", overwrite=True)
