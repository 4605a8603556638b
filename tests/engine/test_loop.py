"""The training loop end to end: a recipe trains, writes its work dir, and exports a model transformers loads;
evaluation and checkpoint policy (evaluation.interval, save_best, checkpoint.max_keep)."""

import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from transformers import AutoModelForImageClassification, pipeline

from hfcls.api import train
from hfcls.artifacts.checkpoint import read_state
from hfcls.data.build import build_datasets, build_eval_loader
from hfcls.engine.setup import accelerator_session
from hfcls.errors import HfclsError
from hfcls.logs import read_jsonl
from hfcls.predict.forward import predict
from hfcls.predict.inputs import recipe_inputs
from hfcls.recipe import load_recipe

from conftest import tiny_recipe_dict, write_recipe


@pytest.fixture(scope="module")
def trained(two_epoch_run):
    """The shared 2-epoch run on the tiny folder: (its recipe, its work dir, what train() returned)."""
    root = two_epoch_run.parent
    return load_recipe(root / "tiny.yaml"), two_epoch_run, json.loads((root / "returned.json").read_text())


def test_work_dir_holds_every_artefact(trained):
    recipe, work, metrics = trained
    for name in ("recipe.yaml", "log.txt", "metrics.jsonl", "checkpoints/epoch_1", "checkpoints/epoch_2"):
        assert (work / name).exists(), name
    for folder in ("latest", "best"):
        for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
            assert (work / folder / name).is_file(), f"{folder}/{name}"
    assert list((work / "tensorboard").rglob("events.out.tfevents*"))
    config = json.loads((work / "best" / "config.json").read_text())
    assert config["id2label"] == {"0": "cat", "1": "dog", "2": "fox"}
    rows = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[-1]["step"] == 2 * 3  # 24 images / batch 8, drop_last
    assert rows[-1]["val_accuracy_top1"] == pytest.approx(metrics["accuracy_top1"])
    assert set(rows[-1]) >= {"lr", "loss", "images_per_sec", "val_loss", "val_accuracy_top2"}
    assert all(r["images_per_sec"] > 0 and np.isfinite(r["loss"]) for r in rows)
    assert "epoch 2:" in (work / "log.txt").read_text()


def test_resolved_recipe_reruns_alone(trained, tmp_path):
    recipe, work, _ = trained
    again = load_recipe(work / "recipe.yaml", [f"work_dir={tmp_path / 'again'}"])
    recipe_dict, again_dict = recipe.to_dict(), again.to_dict()
    recipe_dict.pop("work_dir"), again_dict.pop("work_dir")
    assert recipe_dict == again_dict


def test_best_folder_in_transformers_pipeline_agrees_with_hfcls_eval(trained):
    """No hfcls code on the transformers side: the exported folder alone must suffice."""
    recipe, work, _ = trained
    files = sorted(str(p) for p in Path(recipe.data.val["path"]).rglob("*.png"))
    clf = pipeline("image-classification", model=str(work / "best"))
    theirs = [out[0]["label"] for out in clf(files, top_k=1)]
    ours = hfcls_predictions(recipe, work / "best")
    assert theirs == ours
    assert len(ours) == 12


def hfcls_predictions(recipe, folder):
    """Class names hfcls's own evaluation predicts for the val split, in file order."""
    val = build_datasets(recipe.data, recipe.seed, ("val",))["val"]
    with accelerator_session(recipe) as accelerator:
        loader = build_eval_loader(recipe.data, val, accelerator, recipe.seed, batch_size=5)
        model = accelerator.prepare(AutoModelForImageClassification.from_pretrained(folder))
        got = predict(model, loader, recipe_inputs(recipe, accelerator.device), accelerator=accelerator)
    assert got.valid.all() and len(got.labels) == len(val)
    names = val.features["label"].names
    paths = val.cast_column("image", datasets.Image(decode=False))
    order = np.argsort([row["path"] for row in paths.with_format(None)["image"]])
    return [names[i] for i in got.scores.argmax(1)[order].tolist()]


def test_existing_work_dir_is_never_overwritten(trained, tmp_path):
    recipe, work, _ = trained
    work = shutil.copytree(work, tmp_path / "work")  # the run is shared: even its lock file stays out of it
    before = (work / "metrics.jsonl").read_text()
    with pytest.raises(HfclsError, match=r"already holds checkpoints \(newest: epoch_2\); pass --resume-from auto"):
        train(recipe, work)
    assert (work / "metrics.jsonl").read_text() == before


# ----------------------------------------------------------------------------- evaluation and checkpoint policy


def recipe_for(tmp_path, folders, name="r", overrides=(), **sections):
    return load_recipe(write_recipe(tmp_path / f"{name}.yaml", tiny_recipe_dict(*folders, **sections)), overrides)


def checkpoint_names(work_dir):
    return sorted(p.name for p in (work_dir / "checkpoints").iterdir())


def test_evaluation_interval_and_save_best(tmp_path, tiny_data):
    train(recipe_for(tmp_path, tiny_data, train={"epochs": 3}, evaluation={"interval": 2}), tmp_path / "w")
    rows = read_jsonl(tmp_path / "w" / "metrics.jsonl")
    assert ["val_accuracy_top1" in row for row in rows] == [False, True, True]  # every 2nd, and the last
    best = max((row for row in rows if "val_accuracy_top1" in row), key=lambda row: row["val_accuracy_top1"])
    state = read_state(tmp_path / "w" / "checkpoints" / "epoch_3")
    assert (state.best_epoch, state.best_metric) == (best["epoch"], best["val_accuracy_top1"])


def test_max_keep_deletes_oldest_but_keeps_best(tmp_path, tiny_data):
    # rule less on accuracy: the first (worst) epoch is the "best" one, so it must survive pruning.
    recipe = recipe_for(
        tmp_path,
        tiny_data,
        train={"epochs": 3},
        checkpoint={"max_keep": 1},
        evaluation={"save_best": "accuracy_top1", "rule": "less"},
    )
    train(recipe, tmp_path / "w")
    accuracies = [row["val_accuracy_top1"] for row in read_jsonl(tmp_path / "w" / "metrics.jsonl")]
    assert accuracies[0] < min(accuracies[1:])
    assert checkpoint_names(tmp_path / "w") == ["epoch_1", "epoch_3"]
