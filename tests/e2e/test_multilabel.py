"""Multi-label end to end: the offline multi-label digits learn far above chance; hfcls-eval,
hfcls.pipeline, transformers.pipeline and a moved published file agree on the sigmoid scores;
two processes evaluate every metric as one does; a two-process, class-balanced, mixed-up
multi-label run resumes mid-epoch exactly."""

import json
import shutil

import numpy as np
import pytest
import transformers

import hfcls
from hfcls.evaluation.checkpoint import evaluate_checkpoint
from hfcls.evaluation.request import EvalRequest
from hfcls.evaluation.results import read_results
from hfcls.logs import read_jsonl
from hfcls.metrics import MULTI_LABEL_METRICS
from hfcls.recipe import load_recipe

from commands import run_two_processes
from conftest import (
    deterministic_rows,
    make_multilabel_folder,
    max_difference,
    tiny_recipe_dict,
    weights,
    write_recipe,
)

pytestmark = pytest.mark.xdist_group("multilabel_digits_eval")  # one worker builds the module's fixture, once

EVERY_RULE = {"thrs": [None, 0.3], "topk": [2]}


@pytest.fixture(scope="module")
def evaluated(trained_multilabel_digits, tmp_path_factory):
    """evaluate_checkpoint of best/ with every multi-label metric and rule, read back from its results file."""
    recipe, work = trained_multilabel_digits
    out = tmp_path_factory.mktemp("ml_eval") / "best.json"
    evaluate_checkpoint(
        EvalRequest(
            load_recipe(recipe),
            work / "best",
            metrics=MULTI_LABEL_METRICS,
            metric_options=EVERY_RULE,
            out=out,
            out_items=("metrics", "pred", "class_scores"),
        )
    )
    return read_results(out)


def test_multilabel_digits_learn_far_above_chance(trained_multilabel_digits, evaluated):
    recipe, work = trained_multilabel_digits
    last = read_jsonl(work / "metrics.jsonl")[-1]
    # Chance: a class's AP is its frequency, 2.5 of 10 digits a canvas; F1 of random guesses is lower still.
    assert last["val_mAP"] > 70 and last["val_CF1"] > 40
    assert json.loads((work / "best" / "config.json").read_text())["problem_type"] == "multi_label_classification"
    # hfcls-eval of the exported best/ gives what training logged at that epoch.
    metrics = evaluated["metrics"]
    for name in MULTI_LABEL_METRICS:
        assert metrics[name] == pytest.approx(last[f"val_{name}"], abs=1e-4)
    assert len(metrics["AP_classwise"]) == 10 and np.mean(metrics["AP_classwise"]) == pytest.approx(metrics["mAP"])


def test_predictions_are_every_label_above_the_threshold(evaluated):
    records = evaluated["predictions"]
    assert len(records) == 360
    for record in records:
        scores = np.array(record["class_scores"])
        assert sorted(record["pred_label"]) == np.flatnonzero(scores >= 0.5).tolist()
        assert record["pred_score"] == sorted(record["pred_score"], reverse=True)
        assert 2 <= len(record["gt_label"]) <= 3
    hits = np.mean([set(r["pred_label"]) == set(r["gt_label"]) for r in records])
    assert hits > 0.1  # the whole set right, on a good share of the canvases


def test_pipelines_and_a_moved_published_file_give_the_same_sigmoid_scores(
    trained_multilabel_digits, evaluated, multilabel_digits_dir, tmp_path
):
    recipe, work = trained_multilabel_digits
    files = [str(multilabel_digits_dir / "val" / "images" / f"{i:05d}.png") for i in range(40)]
    reference = transformers.pipeline("image-classification", model=str(work / "best"), device="cpu")
    theirs = reference(files, top_k=10, batch_size=20)
    lone = tmp_path / next((work / "publish").glob("*.safetensors")).name
    shutil.copy(next((work / "publish").glob("*.safetensors")), lone)  # no work dir beside it
    for artifact in (work / "best", lone):
        classifier = hfcls.pipeline(artifact, device="cpu")
        scores, _ = classifier.scores(files)
        for row, hf, record in zip(scores, theirs, evaluated["predictions"]):
            hf_scores = {p["label"]: p["score"] for p in hf}
            np.testing.assert_allclose(row.numpy(), [hf_scores[str(c)] for c in range(10)], atol=1e-5)
            np.testing.assert_allclose(row.numpy(), record["class_scores"], atol=1e-5)
        predicted = classifier(files[:5])
        for labels, row in zip(predicted, scores):
            assert [p["label"] for p in labels] == [
                str(c) for c in np.argsort(-row.numpy(), kind="stable") if row[c] >= 0.5
            ]


def launch(warm_bin, *args, cwd=None):
    """`accelerate launch` of two CPU processes (gloo) running `-m module args...`."""
    return run_two_processes(warm_bin, *args, cwd=cwd, ACCELERATE_USE_CPU=1, CUDA_VISIBLE_DEVICES="")


def test_two_processes_evaluate_every_multilabel_metric_as_one(
    trained_multilabel_digits, evaluated, tmp_path, warm_bin
):
    """360 canvases, batch 16, 2 processes: the last round is uneven, padded and dropped again."""
    recipe, work = trained_multilabel_digits
    out = tmp_path / "two.json"
    run = launch(
        warm_bin,
        "hfcls.cli.eval",
        recipe,
        work / "best",
        "--metrics",
        *MULTI_LABEL_METRICS,
        "--metric-options",
        "thrs=None,0.3",
        "topk=2",
        "--out",
        out,
        "--out-items",
        "metrics",
        "pred",
        "class_scores",
        cwd=tmp_path,
    )
    assert "on 360 val images (10 classes) with 2 process(es)" in run.stdout
    assert "| AP_classwise" in run.stdout and "recall_classwise_top2" in run.stdout
    results = json.loads(out.read_text())
    assert results["metrics"].keys() == evaluated["metrics"].keys()
    for name, value in evaluated["metrics"].items():
        np.testing.assert_allclose(results["metrics"][name], value, atol=1e-9, err_msg=name)
    assert [r["gt_label"] for r in results["predictions"]] == [r["gt_label"] for r in evaluated["predictions"]]


@pytest.mark.slow
def test_two_process_balanced_mixed_multilabel_run_resumes_mid_epoch_exactly(tmp_path, warm_bin):
    """Multi-hot labels x MixUp/CutMix x class-balanced sampling x 2 processes x a mid-epoch resume."""
    train = tmp_path / "train"
    make_multilabel_folder(train, count=48, seed=0)
    val = tmp_path / "val"
    make_multilabel_folder(val, count=8, seed=1)
    recipe = write_recipe(
        tmp_path / "r.yaml",
        tiny_recipe_dict(
            train,
            val,
            data={"sampler": "class_balanced"},
            train={"epochs": 2, "deterministic": True, "mixup_alpha": 0.4, "cutmix_alpha": 1.0, "log_with": []},
            checkpoint={"interval_steps": 2},
        ),
    )
    launch(warm_bin, "hfcls.cli.train", recipe, "--work-dir", tmp_path / "straight")
    # 48 images / (8 x 2 processes) = 3 steps an epoch: step_2 is inside epoch 1.
    shutil.copytree(tmp_path / "straight" / "checkpoints" / "step_2", tmp_path / "stopped" / "checkpoints" / "step_2")
    launch(warm_bin, "hfcls.cli.train", recipe, "--work-dir", tmp_path / "stopped", "--resume")
    assert max_difference(weights(tmp_path / "straight", "epoch_2"), weights(tmp_path / "stopped", "epoch_2")) == 0
    rows = deterministic_rows(tmp_path / "stopped")
    assert rows == deterministic_rows(tmp_path / "straight") and "val_mAP" in rows[-1]
    assert (tmp_path / "straight" / "best").is_dir()  # save_best: auto is mAP for a multi-label run
