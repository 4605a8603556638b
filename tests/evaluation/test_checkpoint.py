"""evaluate_checkpoint on a trained digits model: the metrics, every artifact form, results files, mismatches."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support

from hfcls.artifacts.publish import publish
from hfcls.artifacts.weights import file_sha256
from hfcls.errors import HfclsError
from hfcls.evaluation.checkpoint import evaluate_checkpoint
from hfcls.evaluation.request import EvalRequest
from hfcls.evaluation.results import read_results
from hfcls.recipe import load_recipe

from conftest import ALL_METRICS, REPO, make_image_folder, tiny_recipe_dict, write_recipe

EVERYTHING = dict(metrics=ALL_METRICS, metric_options={"topk": [1, 3]}, out_items=("metrics", "pred", "class_scores"))


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


def assert_same_results(results, best_results):
    assert results["metrics"] == best_results["metrics"]
    got = np.array([r["class_scores"] for r in results["predictions"]])
    np.testing.assert_allclose(got, [r["class_scores"] for r in best_results["predictions"]], atol=1e-6)


def test_every_checkpoint_form_gives_the_same_results(trained_digits, best_results, tmp_path):
    recipe, work = trained_digits
    published = publish(work / "checkpoints" / "epoch_1", tmp_path / "digits")
    bare = shutil.copy(work / "checkpoints" / "epoch_1" / "model.safetensors", tmp_path / "weights.safetensors")
    for checkpoint in (work / "checkpoints" / "epoch_1", published, bare):
        out = tmp_path / f"{checkpoint.name}.pkl"
        results = evaluate_checkpoint(EvalRequest(load_recipe(recipe), checkpoint, out=out, **EVERYTHING))
        assert results.written == [out] and results.samples == 360
        assert results.metrics == best_results["metrics"]
        assert_same_results(read_results(out), best_results)


def test_a_weights_file_named_with_its_hash_takes_the_recipe(trained_digits, best_results, tmp_path):
    """A .safetensors of bare weights whose name carries its hash (no hfcls metadata), as hfcls-eval read it
    before the artifact reader: the recipe gives the architecture, as for any bare weights file."""
    recipe, work = trained_digits
    weights = work / "checkpoints" / "epoch_1" / "model.safetensors"
    hashed = shutil.copy(weights, tmp_path / f"digits-{file_sha256(weights)[:8]}.safetensors")
    results = evaluate_checkpoint(EvalRequest(load_recipe(recipe), hashed, out=tmp_path / "hashed.json", **EVERYTHING))
    assert results.metrics == best_results["metrics"]
    assert_same_results(read_results(tmp_path / "hashed.json"), best_results)


def test_published_file_with_a_wrong_hash_is_refused(trained_digits, tmp_path):
    recipe, work = trained_digits
    bad = tmp_path / "digits-0badc0de.safetensors"
    shutil.copy(work / "best" / "model.safetensors", bad)
    with pytest.raises(HfclsError, match=f"its content hashes to {file_sha256(bad)[:8]}, not the 0badc0de in its name"):
        evaluate_checkpoint(EvalRequest(load_recipe(recipe), bad, metrics=["accuracy"]))


def test_out_folder_is_created_and_items_chosen(trained_digits, tmp_path):
    recipe, work = trained_digits
    out = tmp_path / "new" / "deeper" / "preds.yaml"
    returned = evaluate_checkpoint(EvalRequest(load_recipe(recipe), work / "best", out=out, batch_size=64))
    assert returned.written == [out] and returned.metrics == {} and returned.samples == 360
    results = read_results(out)
    assert list(results) == ["class_names", "predictions"]  # no metrics asked for: predictions only
    assert len(results["predictions"]) == 360 and results["class_names"] == [str(c) for c in range(10)]
    assert set(results["predictions"][0]) == {"gt_label", "pred_label", "pred_class", "pred_score", "image"}


def test_confusion_matrix_picture(trained_digits, tmp_path):
    recipe, work = trained_digits
    returned = evaluate_checkpoint(
        EvalRequest(
            load_recipe(recipe),
            work / "best",
            metrics=["precision", "recall"],
            metric_options={"average": "none"},
            show_dir=tmp_path / "show",
        )
    )
    picture = tmp_path / "show" / "confusion_matrix.png"
    assert returned.written == [picture] and returned.class_names == [str(c) for c in range(10)]
    assert len(returned.metrics["precision_classwise"]) == 10
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 5000


def test_checkpoint_for_another_class_count_says_both_numbers(trained_digits, tmp_path):
    _, work = trained_digits
    three = make_image_folder(tmp_path / "three")  # 3 classes
    recipe = load_recipe(write_recipe(tmp_path / "three.yaml", tiny_recipe_dict(three, three)))
    # A bare weights file is built as the recipe describes it: 3 classes.
    bare = shutil.copy(work / "checkpoints" / "epoch_1" / "model.safetensors", tmp_path / "weights.safetensors")
    with pytest.raises(HfclsError, match="has 10 classes but the recipe's data has 3"):
        evaluate_checkpoint(EvalRequest(recipe, bare, metrics=["accuracy"]))
    # Checkpoints and exports describe their own 10 classes.
    for checkpoint in (work / "checkpoints" / "epoch_1", work / "best"):
        with pytest.raises(HfclsError) as error:
            evaluate_checkpoint(EvalRequest(recipe, checkpoint, metrics=["accuracy"]))
        message = str(error.value)
        assert "checkpoint" in message and "has 10 classes; data.val has 3" in message and "cat, dog, fox" in message


def test_weights_for_another_architecture_are_named(trained_digits, tmp_path):
    recipe, work = trained_digits
    bare = shutil.copy(work / "checkpoints" / "epoch_1" / "model.safetensors", tmp_path / "weights.safetensors")
    with pytest.raises(HfclsError) as error:
        evaluate_checkpoint(
            EvalRequest(load_recipe(recipe, ["model.config.hidden_sizes=[8,32]"]), bare, metrics=["accuracy"])
        )
    assert "does not match the model (resnet)" in str(error.value)
    assert "(16, 8, 1, 1) in the checkpoint, (32, 8, 1, 1) in the model" in str(error.value)


def test_top_k_defaults_to_the_recipes_evaluation_topk(trained_digits, tmp_path):
    recipe, work = trained_digits
    out = tmp_path / "topk.json"
    evaluate_checkpoint(
        EvalRequest(load_recipe(recipe, ["evaluation.topk=[1,2]"]), work / "best", metrics=["accuracy"], out=out)
    )
    metrics = read_results(out)["metrics"]
    assert sorted(metrics) == ["accuracy_top1", "accuracy_top2"]
    assert metrics["accuracy_top1"] <= metrics["accuracy_top2"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "pass --metrics (e.g. --metrics accuracy f1_score) and/or --out FILE"),
        ({"metrics": ["acuracy"]}, "unknown metric 'acuracy' (did you mean \"accuracy\"?)"),
        ({"out": "results.csv"}, "unknown extension; use one of .json, .yaml, .yml, .pkl, .pickle"),
        ({"metrics": ["accuracy"], "split": "test"}, "the recipe has no data.test source"),
        ({"metrics": ["accuracy"], "out_items": ["preds"]}, "out_items: unknown preds"),
        ({"metrics": ["accuracy"], "batch_size": 0}, "batch_size must be at least 1"),
    ],
)
def test_bad_requests_are_refused(trained_digits, kwargs, message):
    recipe, work = trained_digits
    with pytest.raises(HfclsError) as error:
        evaluate_checkpoint(EvalRequest(load_recipe(recipe), work / "best", **kwargs))
    assert message in str(error.value)


@pytest.mark.slow
def test_mixed_precision_and_channels_last_when_the_recipe_asks(trained_digits, best_results, tmp_path):
    # A process of its own, as hfcls-eval runs.
    recipe, work = trained_digits
    out = tmp_path / "bf16.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "hfcls.cli.eval",
            str(recipe),
            str(work / "best"),
            "--out",
            str(out),
            "--out-items",
            "class_scores",
            "--cfg-options",
            "train.mixed_precision=bf16",
            "train.channels_last=true",
        ],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
        timeout=300,
        cwd=tmp_path,
    )
    bf16 = np.array([r["class_scores"] for r in read_results(out)["predictions"]])
    fp32 = np.array([r["class_scores"] for r in best_results["predictions"]])
    assert (bf16.argmax(axis=1) == fp32.argmax(axis=1)).mean() > 0.97
    assert 0 < np.abs(bf16 - fp32).max() < 0.1  # bf16 really ran, and stayed close
    assert json.loads(out.read_text())["predictions"][0].keys() == {"gt_label", "class_scores", "image"}
