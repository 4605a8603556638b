"""End to end: a recipe trains, writes its work dir, and exports a model transformers loads."""

import json
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import yaml
from transformers import pipeline

from hfcls.data.loaders import attach_transforms, build_datasets, build_loader
from hfcls.data.transforms import Normalize
from hfcls.engine import compute_metrics, make_accelerator, predict, train
from hfcls.errors import HfclsError
from hfcls.recipe import load_recipe
from hfcls.train import cli

from conftest import REPO, tiny_recipe_dict, write_recipe


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One 2-epoch run on the tiny folder, shared by the checks below."""
    from conftest import make_image_folder

    root = tmp_path_factory.mktemp("run")
    train_dir = make_image_folder(root / "data" / "train", per_class=8, seed=0)
    val_dir = make_image_folder(root / "data" / "val", per_class=4, seed=1)
    recipe_path = write_recipe(root / "tiny.yaml", tiny_recipe_dict(train_dir, val_dir, train={"epochs": 2}))
    recipe = load_recipe(recipe_path, [f"work_dir={root / 'work'}"])
    metrics = train(recipe, recipe.work_dir)
    return recipe, root / "work", metrics


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
    from transformers import AutoModelForImageClassification

    dsets = attach_transforms(build_datasets(recipe.data, recipe.seed, ("val",)), recipe.data)
    accelerator = make_accelerator(recipe, folder)
    model = AutoModelForImageClassification.from_pretrained(folder)
    loader = build_loader(dsets["val"], recipe.data, 5, False, 0, False)
    model, loader = accelerator.prepare(model, loader)
    logits, labels, valid = predict(model, loader, accelerator, Normalize(recipe.data.mean, recipe.data.std))
    assert valid.all() and len(labels) == len(dsets["val"])
    names = dsets["val"].features["label"].names
    paths = dsets["val"].cast_column("image", datasets.Image(decode=False))
    order = np.argsort([row["path"] for row in paths.with_format(None)["image"]])
    return [names[i] for i in logits.argmax(1)[order].tolist()]


def test_existing_work_dir_is_never_overwritten(trained):
    recipe, work, _ = trained
    before = (work / "metrics.jsonl").read_text()
    with pytest.raises(HfclsError, match=r"already holds checkpoints \(newest: epoch_2\); pass --resume-from auto"):
        train(recipe, work)
    assert (work / "metrics.jsonl").read_text() == before


def test_compute_metrics_counts_only_valid_images():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    metrics = compute_metrics(logits, labels, torch.tensor([True, True, False]), topk=(1,))
    assert metrics["accuracy_top1"] == 50.0


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli([str(a) for a in argv])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    return err


def test_missing_data_folder_is_one_line(tmp_path, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(tmp_path / "nope", tmp_path / "nope"))
    err = run_cli([recipe, "--work-dir", tmp_path / "w"], capsys)
    assert "image folder" in err and "nope does not exist" in err


def test_unknown_model_type_is_one_line(tiny_recipe, tmp_path, capsys):
    err = run_cli([tiny_recipe, "model.config.model_type=resnett", "--work-dir", tmp_path / "w"], capsys)
    assert "model_type 'resnett' is not known to transformers" in err


def test_undecodable_image_is_named_or_skipped(tiny_data, tmp_path, capsys):
    train_dir, val_dir = tiny_data
    (train_dir / "cat" / "broken.png").write_bytes(b"not a png at all")
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(train_dir, val_dir))
    err = run_cli([recipe, "--work-dir", tmp_path / "w1"], capsys)
    assert "cannot decode image" in err and "broken.png" in err and "skip_bad_images" in err
    metrics = train(load_recipe(recipe, ["data.skip_bad_images=true"]), tmp_path / "w2")
    assert 0 <= metrics["accuracy_top1"] <= 100


def test_train_val_split_holds_out_a_stratified_fraction(tiny_data):
    train_dir, _ = tiny_data
    recipe = load_recipe(write_recipe(train_dir.parent / "r.yaml", tiny_recipe_dict(train_dir, train_dir)),
                         ["data.val=null", "data.train_val_split=0.25"])
    dsets = build_datasets(recipe.data, seed=0)
    assert (len(dsets["train"]), len(dsets["val"])) == (18, 6)
    assert sorted(dsets["val"]["label"]) == [0, 0, 1, 1, 2, 2]


def test_val_folder_missing_a_class_keeps_train_label_ids(tiny_data, tmp_path):
    train_dir, val_dir = tiny_data
    import shutil

    shutil.rmtree(val_dir / "cat")
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(train_dir, val_dir)))
    dsets = build_datasets(recipe.data, seed=0)
    assert dsets["val"].features["label"].names == ["cat", "dog", "fox"]
    assert sorted(set(dsets["val"]["label"])) == [1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [[], ["-m", "accelerate.commands.launch", "--num_processes", "1"]])
def test_script_runs_under_python_and_accelerate_launch(tiny_recipe, tmp_path, launcher):
    work = tmp_path / "w"
    cmd = [sys.executable, *launcher, str(REPO / "hfcls" / "train.py"), str(tiny_recipe),
           "train.epochs=1", "--work-dir", str(work)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    assert (work / "best" / "model.safetensors").is_file()
    assert yaml.safe_load((work / "recipe.yaml").read_text())["train"]["epochs"] == 1
