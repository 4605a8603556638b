"""hfcls-eval on a trained digits model: checkpoint forms, results files, errors, many processes."""

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from hfcls.loading import verify_hash_suffix
from hfcls.publish import file_sha256 as sha256_file
from hfcls.errors import HfclsError
from hfcls.eval import cli, read_results, write_results

from conftest import REPO, make_image_folder, tiny_recipe_dict, write_recipe

ALL_METRICS = ["accuracy", "precision", "recall", "f1_score", "support", "confusion_matrix"]


def run_eval(*argv):
    return cli([str(a) for a in argv])


def user_error(capsys, *argv) -> str:
    """Run hfcls-eval expecting a user error: exit status 2 and one line on stderr."""
    with pytest.raises(SystemExit) as exit_info:
        run_eval(*argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


@pytest.fixture(scope="module")
def best_results(trained_digits, tmp_path_factory):
    """hfcls-eval on best/ with every metric and every per-sample item, as JSON."""
    recipe, work = trained_digits
    out = tmp_path_factory.mktemp("eval") / "best.json"
    run_eval(recipe, work / "best", "--metrics", *ALL_METRICS, "--metric-options", "topk=1,3", "--out", out,
             "--out-items", "metrics", "pred", "class_scores")
    return read_results(out)


def test_metrics_match_sklearn_on_the_written_predictions(best_results, digits_dir):
    metrics, records = best_results["metrics"], best_results["predictions"]
    assert len(records) == 360
    # dataset order: the val folder's classes in order, 35-37 images each
    labels = np.array([r["gt_label"] for r in records])
    assert labels.tolist() == sorted(labels.tolist())
    assert np.bincount(labels).tolist() == [len(list((digits_dir / "val" / str(c)).iterdir())) for c in range(10)]
    predicted = np.array([r["pred_label"] for r in records])
    assert 75 < metrics["accuracy_top1"] == pytest.approx(100 * (predicted == labels).mean())
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predicted, average="macro", zero_division=0)
    assert metrics["precision"] == pytest.approx(100 * precision)
    assert metrics["recall"] == pytest.approx(100 * recall)
    assert metrics["f1_score"] == pytest.approx(100 * f1)
    assert metrics["support"] == 360
    assert np.trace(metrics["confusion_matrix"]) == (predicted == labels).sum()
    for record in records[:20]:
        assert record["pred_class"] == str(record["pred_label"])
        assert record["pred_score"] == max(record["class_scores"])
        assert sum(record["class_scores"]) == pytest.approx(1, abs=1e-5)


def test_every_checkpoint_form_gives_the_same_results(trained_digits, best_results, tmp_path):
    recipe, work = trained_digits
    weights = work / "checkpoints" / "epoch_1" / "model.safetensors"
    published = tmp_path / f"digits-{sha256_file(weights)[:8]}.safetensors"
    shutil.copy(weights, published)
    for checkpoint in (work / "checkpoints" / "epoch_1", published):
        out = tmp_path / f"{checkpoint.name}.pkl"
        run_eval(recipe, checkpoint, "--metrics", *ALL_METRICS, "--metric-options", "topk=1,3", "--out", out,
                 "--out-items", "metrics", "pred", "class_scores")
        results = read_results(out)
        assert results["metrics"] == best_results["metrics"]
        got = np.array([r["class_scores"] for r in results["predictions"]])
        np.testing.assert_allclose(got, [r["class_scores"] for r in best_results["predictions"]], atol=1e-6)


def test_published_file_with_a_wrong_hash_is_refused(trained_digits, tmp_path, capsys):
    recipe, work = trained_digits
    bad = tmp_path / "digits-0badc0de.safetensors"
    shutil.copy(work / "best" / "model.safetensors", bad)
    err = user_error(capsys, recipe, bad, "--metrics", "accuracy")
    assert f"its content hashes to {sha256_file(bad)[:8]}, not the 0badc0de in its name" in err


def test_verify_hash_suffix(tmp_path):
    content = b"published weights"
    plain = tmp_path / "model.safetensors"
    plain.write_bytes(content)
    verify_hash_suffix(plain)  # no hash in the name: nothing to check
    good = tmp_path / f"model-{sha256_file(plain)[:8]}.safetensors"
    good.write_bytes(content)
    verify_hash_suffix(good)
    good.write_bytes(content + b"!")
    with pytest.raises(HfclsError, match="corrupt or was modified"):
        verify_hash_suffix(good)


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml", ".pkl", ".pickle"])
def test_every_out_format_round_trips(best_results, tmp_path, suffix):
    path = tmp_path / f"results{suffix}"
    write_results(path, best_results)
    assert read_results(path) == best_results


def test_out_folder_is_created_and_items_chosen(trained_digits, tmp_path, capsys):
    recipe, work = trained_digits
    out = tmp_path / "new" / "deeper" / "preds.yaml"
    run_eval(recipe, work / "best", "--out", out, "--batch-size", "64")
    results = read_results(out)
    assert list(results) == ["predictions"]  # no --metrics: predictions only
    assert len(results["predictions"]) == 360
    assert set(results["predictions"][0]) == {"gt_label", "pred_label", "pred_class", "pred_score"}
    assert f"wrote {out}: 360 samples" in capsys.readouterr().out


def test_per_class_table_and_confusion_matrix_picture(trained_digits, tmp_path, capsys):
    recipe, work = trained_digits
    run_eval(recipe, work / "best", "--metrics", "precision", "recall", "--metric-options", "average=none",
             "--show-dir", tmp_path / "show")
    out = capsys.readouterr().out
    assert "| class | precision_classwise | recall_classwise |" in out
    assert sum(line.startswith("| 7 ") for line in out.splitlines()) == 1
    picture = tmp_path / "show" / "confusion_matrix.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 5000


def test_checkpoint_for_another_class_count_says_both_numbers(trained_digits, tmp_path, capsys):
    _, work = trained_digits
    three = make_image_folder(tmp_path / "three")  # 3 classes
    recipe = write_recipe(tmp_path / "three.yaml", tiny_recipe_dict(three, three))
    err = user_error(capsys, recipe, work / "checkpoints" / "epoch_1", "--metrics", "accuracy")
    assert "has 10 classes but the recipe's data has 3" in err
    err = user_error(capsys, recipe, work / "best", "--metrics", "accuracy")
    assert "checkpoint" in err and "has 10 classes; data.val has 3" in err and "cat, dog, fox" in err


def test_checkpoint_for_another_architecture_is_named(trained_digits, capsys):
    recipe, work = trained_digits
    err = user_error(capsys, recipe, work / "checkpoints" / "epoch_1", "--metrics", "accuracy",
                     "--cfg-options", "model.config.hidden_sizes=[8,32]")
    assert "does not match the recipe's model (resnet)" in err
    assert "(16, 8, 1, 1) in the checkpoint, (32, 8, 1, 1) in the recipe" in err


@pytest.mark.parametrize("argv, message", [
    (["--metrics", "accuracy"], "does not exist"),
    (["--metrics", "acuracy"], 'unknown metric \'acuracy\' (did you mean "accuracy"?); known metrics: accuracy, '),
    (["--out", "results.csv"], "unknown extension; use one of .json, .yaml, .yml, .pkl, .pickle"),
    ([], "pass --metrics (e.g. --metrics accuracy f1_score) and/or --out FILE"),
    (["--metrics", "accuracy", "--split", "test"], "the recipe has no data.test source"),
])
def test_bad_requests_are_user_errors(trained_digits, capsys, argv, message):
    recipe, work = trained_digits
    checkpoint = work / "missing" if message == "does not exist" else work / "best"
    assert message in user_error(capsys, recipe, checkpoint, *argv)


@pytest.mark.slow
def test_two_processes_count_every_sample_once(trained_digits, best_results, tmp_path):
    """360 val images, batch 16, 2 processes: the last round is uneven and padded by Accelerate."""
    recipe, work = trained_digits
    out = tmp_path / "two.json"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                    "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                    "--main_process_port", str(port), "-m", "hfcls.eval", str(recipe), str(work / "best"),
                    "--metrics", *ALL_METRICS, "--metric-options", "topk=1,3", "--out", str(out),
                    "--out-items", "metrics", "pred", "class_scores"],
                   env=env, check=True, timeout=300, cwd=tmp_path, capture_output=True, text=True)
    assert "on 360 val images (10 classes) with 2 process(es)" in run.stdout
    results = json.loads(out.read_text())
    assert results["metrics"] == best_results["metrics"]
    assert len(results["predictions"]) == len(best_results["predictions"]) == 360
    assert [r["gt_label"] for r in results["predictions"]] == [r["gt_label"] for r in best_results["predictions"]]
    np.testing.assert_allclose([r["class_scores"] for r in results["predictions"]],
                               [r["class_scores"] for r in best_results["predictions"]], atol=1e-5)


@pytest.mark.slow
def test_mixed_precision_and_channels_last_when_the_recipe_asks(trained_digits, best_results, tmp_path):
    # A process of its own: Accelerate's precision is fixed once per process.
    recipe, work = trained_digits
    out = tmp_path / "bf16.json"
    subprocess.run([sys.executable, "-m", "hfcls.eval", str(recipe), str(work / "best"), "--out", str(out),
                    "--out-items", "class_scores", "--cfg-options", "train.mixed_precision=bf16",
                    "train.channels_last=true"],
                   env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, timeout=300, cwd=tmp_path)
    bf16 = np.array([r["class_scores"] for r in read_results(out)["predictions"]])
    fp32 = np.array([r["class_scores"] for r in best_results["predictions"]])
    assert (bf16.argmax(axis=1) == fp32.argmax(axis=1)).mean() > 0.97
    assert 0 < np.abs(bf16 - fp32).max() < 0.1  # bf16 really ran, and stayed close


def test_top_k_defaults_to_the_recipes_evaluation_topk(trained_digits, tmp_path):
    recipe, work = trained_digits
    out = tmp_path / "topk.json"
    run_eval(recipe, work / "best", "--metrics", "accuracy", "--out", out, "--cfg-options", "evaluation.topk=[1,2]")
    metrics = read_results(out)["metrics"]
    assert sorted(metrics) == ["accuracy_top1", "accuracy_top2"]
    assert metrics["accuracy_top1"] <= metrics["accuracy_top2"]
