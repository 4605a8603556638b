"""Where features cross: what one part of hfcls writes, every other part reads the same way.

Each test here failed before the artifact reader, the data door and the engine's parts were one each.
"""

import shutil

import pytest
import torch
import yaml
from conftest import tiny_recipe_dict, write_recipe

from hfcls import pipeline
from hfcls.api import train
from hfcls.artifacts.layout import EMA_FILE
from hfcls.engine.setup import accelerator_session, build_run, make_accelerator
from hfcls.evaluation.checkpoint import evaluate_checkpoint
from hfcls.logs import read_jsonl
from hfcls.recipe import load_recipe


@pytest.fixture
def ema_run(tmp_path, tiny_data):
    """(recipe, work dir) of 3 epochs with an EMA that lags the raw weights, checkpoint and evaluation each epoch."""
    recipe = write_recipe(tmp_path / "ema.yaml", tiny_recipe_dict(
        *tiny_data, train={"epochs": 3, "ema": {"decay": 0.9, "warmup": False}, "publish": True}))
    train(load_recipe(recipe), tmp_path / "work")
    return load_recipe(recipe), tmp_path / "work"


def test_eval_of_an_ema_checkpoint_reproduces_what_training_logged(ema_run):
    recipe, work = ema_run
    rows = read_jsonl(work / "metrics.jsonl")
    raw_differs = False
    for row in rows:
        checkpoint = work / "checkpoints" / f"epoch_{row['epoch']}"
        assert (checkpoint / EMA_FILE).is_file()
        metrics = evaluate_checkpoint(recipe, checkpoint, metrics=["accuracy"])["metrics"]
        assert metrics["accuracy_top1"] == row["val_accuracy_top1"]
        assert metrics["accuracy_top2"] == row["val_accuracy_top2"]
        raw = evaluate_checkpoint(recipe, checkpoint, metrics=["accuracy"], use_ema=False)["metrics"]
        raw_differs |= raw != metrics
    assert raw_differs  # the check can tell the two sets of weights apart
    best = evaluate_checkpoint(recipe, work / "best", metrics=["accuracy"])["metrics"]
    best_row = max(rows, key=lambda row: row["val_accuracy_top1"])
    assert best["accuracy_top1"] == best_row["val_accuracy_top1"]


def test_every_reader_gives_the_ema_its_run_evaluated(ema_run, tmp_path):
    recipe, work = ema_run
    image = str(next((tmp_path / "data" / "val" / "cat").glob("*.png")))
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
    images = sorted(str(p) for p in (tmp_path / "data" / "val").glob("*/*.png"))
    assert pipeline(lone)(images, top_k=3) == pipeline(work / "latest")(images, top_k=3)
    # hfcls-eval needs the recipe for its data only
    assert (evaluate_checkpoint(recipe, lone, metrics=["accuracy"])["metrics"]
            == evaluate_checkpoint(recipe, work / "latest", metrics=["accuracy"])["metrics"])


def test_trackers_are_told_the_recipe(tmp_path, tiny_data):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(
        *tiny_data, train={"epochs": 1, "log_with": ["tensorboard"]})))
    train(recipe, tmp_path / "w")
    hparams = yaml.safe_load(next((tmp_path / "w" / "tensorboard").rglob("hparams.yml")).read_text())
    assert hparams["optim.lr"] == 0.01 and hparams["optim.type"] == "adamw"
    assert hparams["data.batch_size"] == 8 and hparams["train.epochs"] == 1
    assert hparams["model.config.model_type"] == "resnet"


def test_batches_are_copied_to_the_device_without_blocking(tmp_path, tiny_data):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data)))
    assert make_accelerator(recipe).dataloader_config.non_blocking
    with accelerator_session(recipe, tmp_path / "w") as accelerator:
        run = build_run(recipe, tmp_path / "w", accelerator)
        # Accelerate's prepared loaders keep the flag; it takes effect with pinned memory on CUDA.
        assert run.train_loader.prepared._non_blocking and run.val_loader.prepared._non_blocking
        batch = next(iter(run.train_loader))
        assert batch["pixel_values"].dtype == torch.uint8
