"""hfcls-eval's command line: flags into evaluate_checkpoint, what it prints, and user errors as one line."""

import shutil

import pytest

from hfcls.artifacts.weights import file_sha256
from hfcls.cli.eval import main, parse_args
from hfcls.evaluation.results import read_results


def run_eval(*argv):
    return main([str(a) for a in argv])


def user_error(capsys, *argv) -> str:
    """Run hfcls-eval expecting a user error: exit status 2 and one line on stderr."""
    with pytest.raises(SystemExit) as exit_info:
        run_eval(*argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_flags_and_their_defaults():
    args = parse_args(["r.yaml", "best", "--metrics", "accuracy", "f1_score", "--no-ema", "--split", "test"])
    assert (args.metrics, args.use_ema, args.split, args.out_items) == (
        ["accuracy", "f1_score"],
        False,
        "test",
        ["metrics", "pred"],
    )
    assert parse_args(["r.yaml", "best", "--ema"]).use_ema is True
    assert parse_args(["r.yaml", "best"]).use_ema is None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--metrics", "accuracy"], "does not exist"),
        (["--metrics", "acuracy"], "unknown metric 'acuracy' (did you mean \"accuracy\"?); known metrics: accuracy, "),
        (["--out", "results.csv"], "unknown extension; use one of .json, .yaml, .yml, .pkl, .pickle"),
        ([], "pass --metrics (e.g. --metrics accuracy f1_score) and/or --out FILE"),
        (["--metrics", "accuracy", "--split", "test"], "the recipe has no data.test source"),
        (
            ["--metrics", "accuracy", "--metric-options", "average=weighted"],
            "average must be one of macro, micro, none",
        ),
        (["--metrics", "accuracy", "--metric-options", "top=1"], "metric option 'top=1': expected one of topk=..., "),
        (["--metrics", "accuracy", "--batch-size", "0"], "error: --batch-size must be at least 1, got 0"),
        (["--metrics", "accuracy", "--tta", "flips"], "error: --tta: unknown view 'flips' (did you mean \"flip\"?)"),
    ],
)
def test_bad_requests_are_user_errors(trained_digits, capsys, argv, message):
    recipe, work = trained_digits
    checkpoint = work / "missing" if message == "does not exist" else work / "best"
    assert message in user_error(capsys, recipe, checkpoint, *argv)


def test_published_file_with_a_wrong_hash_is_refused(trained_digits, tmp_path, capsys):
    recipe, work = trained_digits
    bad = tmp_path / "digits-0badc0de.safetensors"
    shutil.copy(work / "best" / "model.safetensors", bad)
    err = user_error(capsys, recipe, bad, "--metrics", "accuracy")
    assert f"its content hashes to {file_sha256(bad)[:8]}, not the 0badc0de in its name" in err


def test_out_file_is_written_and_named(trained_digits, tmp_path, capsys):
    recipe, work = trained_digits
    out = tmp_path / "new" / "deeper" / "preds.yaml"
    run_eval(recipe, work / "best", "--out", out, "--batch-size", "64")
    assert len(read_results(out)["predictions"]) == 360
    assert f"wrote {out}: 360 samples" in capsys.readouterr().out


def test_per_class_table_and_confusion_matrix_picture(trained_digits, tmp_path, capsys):
    recipe, work = trained_digits
    run_eval(
        recipe,
        work / "best",
        "--metrics",
        "precision",
        "recall",
        "--metric-options",
        "average=none",
        "--show-dir",
        tmp_path / "show",
    )
    out = capsys.readouterr().out
    assert "| class | precision_classwise | recall_classwise |" in out
    assert sum(line.startswith("| 7 ") for line in out.splitlines()) == 1
    picture = tmp_path / "show" / "confusion_matrix.png"
    assert f"wrote {picture}\n" in out
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 5000


def test_cfg_options_and_metric_options_reach_the_evaluation(trained_digits, tmp_path):
    recipe, work = trained_digits
    out = tmp_path / "topk.json"
    run_eval(recipe, work / "best", "--metrics", "accuracy", "--out", out, "--cfg-options", "evaluation.topk=[1,2]")
    assert sorted(read_results(out)["metrics"]) == ["accuracy_top1", "accuracy_top2"]
    run_eval(recipe, work / "best", "--metrics", "accuracy", "--out", out, "--metric-options", "topk=3", "--overwrite")
    assert sorted(read_results(out)["metrics"]) == ["accuracy_top3"]
