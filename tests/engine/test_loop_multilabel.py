"""Multi-label and imbalanced runs through the one training loop: the problem type from the data
(or the recipe), the loss the recipe names, in-memory and worker loaders, an exact mid-epoch resume."""

import json
import shutil

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

import hfcls
from hfcls.api import train
from hfcls.engine.losses import asl, bce, cross_entropy
from hfcls.errors import HfclsError
from hfcls.logs import read_jsonl
from hfcls.recipe import load_recipe, recipe_from_dict

from conftest import built_run, deterministic_rows, max_difference, tiny_recipe_dict, weights, write_recipe


def recipe_file(tmp_path, data_dirs, name="r", **sections):
    sections["train"] = {"log_with": [], **sections.get("train", {})}
    return write_recipe(tmp_path / f"{name}.yaml", tiny_recipe_dict(*data_dirs, **sections))


@pytest.mark.parametrize("in_memory", [False, True], ids=["workers", "in-memory"])
def test_multilabel_run_trains_validates_and_exports(tmp_path, multilabel_data, in_memory):
    pipeline = [{"type": "Resize", "size": [16, 16]}, {"type": "RandomCrop", "size": 16, "padding": 2}]
    recipe = load_recipe(
        recipe_file(
            tmp_path, multilabel_data, data={"in_memory": in_memory, "train_pipeline": pipeline}, train={"epochs": 2}
        )
    )
    train(recipe, tmp_path / "w")
    rows = read_jsonl(tmp_path / "w" / "metrics.jsonl")
    assert {"val_loss", "val_mAP", "val_CP", "val_CR", "val_CF1", "val_OP", "val_OR", "val_OF1"} <= rows[-1].keys()
    assert not any(isinstance(v, list) for v in rows[-1].values())  # per-class lists stay out of the log
    assert 0 < rows[-1]["val_mAP"] <= 100 and np.isfinite(rows[-1]["loss"])
    config = json.loads((tmp_path / "w" / "best" / "config.json").read_text())  # save_best auto: mAP
    assert config["problem_type"] == "multi_label_classification" and config["id2label"]["2"] == "fox"


def test_multilabel_mid_epoch_resume_is_exact(tmp_path, multilabel_data):
    sections = {"train": {"epochs": 2, "deterministic": True, "mixup_alpha": 0.4}, "checkpoint": {"interval_steps": 2}}
    recipe = load_recipe(recipe_file(tmp_path, multilabel_data, **sections))
    train(recipe, tmp_path / "straight")
    stopped = tmp_path / "stopped"
    shutil.copytree(tmp_path / "straight" / "checkpoints" / "step_2", stopped / "checkpoints" / "step_2")
    train(recipe, stopped, resume_from="auto")
    assert max_difference(weights(tmp_path / "straight", "epoch_2"), weights(stopped, "epoch_2")) == 0
    assert deterministic_rows(stopped) == deterministic_rows(tmp_path / "straight")


def test_the_loss_follows_the_problem_type_and_the_recipe(tmp_path, multilabel_data, tiny_data):
    with built_run(load_recipe(recipe_file(tmp_path, multilabel_data)), tmp_path / "a", validate=False) as run:
        assert run.loss.per_image is bce and run.model.config.problem_type == "multi_label_classification"
    asl_recipe = load_recipe(
        recipe_file(tmp_path, multilabel_data, "asl", train={"loss": {"type": "asl", "gamma_neg": 2}})
    )
    with built_run(asl_recipe, tmp_path / "b", validate=False) as run:
        assert run.loss.per_image is asl and run.loss.options == {"gamma_neg": 2}
        run.train_loader.set_epoch(0)
        batch = next(iter(run.train_loader))
        assert batch["labels"].shape == (8, 3) and set(batch["labels"].unique().tolist()) <= {0.0, 1.0}
    with built_run(load_recipe(recipe_file(tmp_path, tiny_data, "single")), tmp_path / "c", validate=False) as run:
        assert run.loss.per_image is cross_entropy and run.model.config.problem_type is None


def test_single_label_data_trains_a_multi_label_model_when_asked(tmp_path, tiny_data):
    recipe = load_recipe(recipe_file(tmp_path, tiny_data, model={"problem_type": "multi_label_classification"}))
    train(recipe, tmp_path / "w")
    assert "val_mAP" in read_jsonl(tmp_path / "w" / "metrics.jsonl")[-1]
    classifier = hfcls.pipeline(tmp_path / "w" / "best", device="cpu")
    image = str(tiny_data[1] / "dog" / "0.png")
    scores, _ = classifier.scores([image])
    assert [p["label"] for p in classifier(image)] == [
        classifier.class_names[i] for i in torch.argsort(scores[0], descending=True) if scores[0, i] >= 0.5
    ]
    assert not torch.allclose(scores.sum(), torch.tensor(1.0))  # sigmoids, not a softmax


def test_multi_label_data_cannot_train_a_single_label_model(tmp_path, multilabel_data):
    recipe = load_recipe(recipe_file(tmp_path, multilabel_data, model={"problem_type": "single_label_classification"}))
    with pytest.raises(HfclsError, match="data.train is multi-label .lists of classes. but the model is single-label"):
        with built_run(recipe, tmp_path / "w", validate=False):
            pass
    with pytest.raises(HfclsError, match="train.loss.type cross_entropy does not train a multi-label"):
        with built_run(
            load_recipe(recipe_file(tmp_path, multilabel_data, "ce", train={"loss": {"type": "cross_entropy"}})),
            tmp_path / "x",
            validate=False,
        ):
            pass


def test_balanced_class_weights_come_from_the_training_labels(tmp_path):
    from conftest import make_image_folder

    train_dir = tmp_path / "train"
    for name, count in (("cat", 2), ("dog", 5), ("fox", 9)):
        make_image_folder(train_dir, per_class=count, classes={name: (100, 100, 100)})
    recipe = recipe_from_dict(tiny_recipe_dict(train_dir, train_dir, train={"class_weights": "balanced"}))
    with built_run(recipe, tmp_path / "w", validate=False) as run:
        expected = compute_class_weight("balanced", classes=np.arange(3), y=np.repeat(np.arange(3), [2, 5, 9]))
        np.testing.assert_allclose(run.loss.class_weights.numpy(), expected, rtol=1e-6)
    with pytest.raises(HfclsError, match="train.class_weights must be balanced or a list of numbers, got 'balance'"):
        recipe_from_dict(tiny_recipe_dict(train_dir, train_dir, train={"class_weights": "balance"}))
