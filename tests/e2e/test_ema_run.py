"""A run with an EMA, read back by every reader: hfcls-eval's evaluate_checkpoint, hfcls.pipeline on each
artifact form, a published file on its own. Each gives the weights the run evaluated: the EMA."""

import shutil

import pytest

from hfcls import pipeline
from hfcls.api import train
from hfcls.artifacts.checkpoint import EMA_FILE
from hfcls.evaluation.checkpoint import evaluate_checkpoint
from hfcls.evaluation.request import EvalRequest
from hfcls.logs import read_jsonl
from hfcls.recipe import load_recipe

from conftest import make_tiny_data, tiny_recipe_dict, write_recipe

pytestmark = pytest.mark.xdist_group("ema_run")  # one worker trains the run, once, for all its readers


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    """(recipe, work dir) of 3 epochs with an EMA that lags the raw weights, checkpoint and evaluation each epoch;
    its data in data/ beside the work dir."""
    root = tmp_path_factory.mktemp("ema_run")
    data = make_tiny_data(root)
    recipe = write_recipe(
        root / "ema.yaml",
        tiny_recipe_dict(*data, train={"epochs": 3, "ema": {"decay": 0.9, "warmup": False}, "publish": True}),
    )
    train(load_recipe(recipe), root / "work")
    return load_recipe(recipe), root / "work"


def test_eval_of_an_ema_checkpoint_reproduces_what_training_logged(ema_run):
    recipe, work = ema_run
    rows = read_jsonl(work / "metrics.jsonl")
    raw_differs = False
    for row in rows:
        checkpoint = work / "checkpoints" / f"epoch_{row['epoch']}"
        assert (checkpoint / EMA_FILE).is_file()
        metrics = evaluate_checkpoint(EvalRequest(recipe, checkpoint, metrics=["accuracy"])).metrics
        assert metrics["accuracy_top1"] == row["val_accuracy_top1"]
        assert metrics["accuracy_top2"] == row["val_accuracy_top2"]
        raw = evaluate_checkpoint(EvalRequest(recipe, checkpoint, metrics=["accuracy"], use_ema=False)).metrics
        raw_differs |= raw != metrics
    assert raw_differs  # the check can tell the two sets of weights apart
    best = evaluate_checkpoint(EvalRequest(recipe, work / "best", metrics=["accuracy"])).metrics
    best_row = max(rows, key=lambda row: row["val_accuracy_top1"])
    assert best["accuracy_top1"] == best_row["val_accuracy_top1"]


def test_every_reader_gives_the_ema_its_run_evaluated(ema_run):
    recipe, work = ema_run
    image = str(next((work.parent / "data" / "val" / "cat").glob("*.png")))
    last = work / "checkpoints" / "epoch_3"
    expected = pipeline(work / "latest")(image, top_k=3)
    assert pipeline(last)(image, top_k=3) == expected
    assert pipeline(last, use_ema=False)(image, top_k=3) != expected
    published = next((work / "publish").glob("*.safetensors"))
    assert pipeline(published)(image, top_k=3) == expected


def test_a_published_file_works_on_its_own(ema_run, tmp_path):
    recipe, work = ema_run
    lone = tmp_path / "elsewhere" / next((work / "publish").glob("*.safetensors")).name
    lone.parent.mkdir()
    shutil.copy(next((work / "publish").glob("*.safetensors")), lone)
    images = sorted(str(p) for p in (work.parent / "data" / "val").glob("*/*.png"))
    assert pipeline(lone)(images, top_k=3) == pipeline(work / "latest")(images, top_k=3)
    # hfcls-eval needs the recipe for its data only
    assert (
        evaluate_checkpoint(EvalRequest(recipe, lone, metrics=["accuracy"])).metrics
        == evaluate_checkpoint(EvalRequest(recipe, work / "latest", metrics=["accuracy"])).metrics
    )
