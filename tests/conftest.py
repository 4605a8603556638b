"""Shared fixtures: tiny generated image folders and recipes, all offline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

# Colours the tiny classes are drawn around: learnable in one epoch.
CLASS_COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "fox": (40, 40, 200)}


def make_image_folder(root: Path, per_class: int = 8, size: int = 16, seed: int = 0, classes=CLASS_COLOURS) -> Path:
    """root/<class>/<i>.png: noisy images around a class colour."""
    rng = np.random.default_rng(seed)
    for name, colour in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-40, 40, size=(size, size, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def tiny_recipe_dict(train_dir, val_dir, **sections) -> dict:
    """A complete recipe for a ~10k-parameter ResNet on 16x16 images."""
    recipe = {
        "data": {
            "train": {"type": "imagefolder", "path": str(train_dir)},
            "val": {"type": "imagefolder", "path": str(val_dir)},
            "batch_size": 8,
            "num_workers": 0,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.25, 0.25, 0.25],
            "train_pipeline": [{"type": "RandomResizedCrop", "size": 16, "scale": [0.5, 1.0]},
                               {"type": "RandomHorizontalFlip"}],
            "eval_pipeline": [{"type": "Resize", "size": 16}, {"type": "CenterCrop", "size": 16}],
        },
        "model": {"config": {"model_type": "resnet", "embedding_size": 8, "hidden_sizes": [8, 16],
                             "depths": [1, 1], "layer_type": "basic"}},
        "optim": {"type": "adamw", "lr": 0.01, "weight_decay": 0.0},
        "schedule": {"type": "constant"},
        "train": {"epochs": 1, "log_interval": 2},
        "evaluation": {"topk": [1, 2]},
    }
    for key, value in sections.items():
        recipe[key] = {**recipe.get(key, {}), **value} if isinstance(value, dict) else value
    return recipe


def write_recipe(path: Path, recipe: dict) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@pytest.fixture
def tiny_data(tmp_path):
    """(train_dir, val_dir): 3 classes, 8 + 4 images each, 16x16 RGB PNG."""
    train = make_image_folder(tmp_path / "data" / "train", per_class=8, seed=0)
    val = make_image_folder(tmp_path / "data" / "val", per_class=4, seed=1)
    return train, val


@pytest.fixture
def tiny_recipe(tmp_path, tiny_data):
    """Path of a 1-epoch recipe on `tiny_data`."""
    return write_recipe(tmp_path / "tiny.yaml", tiny_recipe_dict(*tiny_data))


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """scikit-learn's digits prepared as the demo's image folder (train/val)."""
    from hfcls.data.prepare import prepare_digits

    root = tmp_path_factory.mktemp("digits")
    prepare_digits(root)
    return root


@pytest.fixture(scope="session")
def trained_digits(tmp_path_factory, digits_dir):
    """(recipe path, work dir) of a tiny ResNet trained 1 epoch on digits at 16x16 (~90 % val accuracy).

    Trained once per test run: pytest-xdist workers share it through their common
    temporary folder, under a file lock. The 360 val images with eval batch 16 do
    not divide into 2 x 16, as the multi-process evaluation test needs.
    """
    from filelock import FileLock

    from hfcls.engine import train
    from hfcls.recipe import load_recipe

    shared = os.environ.get("PYTEST_XDIST_WORKER") is not None
    root = tmp_path_factory.getbasetemp().parent if shared else tmp_path_factory.getbasetemp()
    root = root / "trained_digits"
    recipe, work_dir = root / "digits.yaml", root / "work"
    root.mkdir(exist_ok=True)
    with FileLock(str(root / "lock")):
        if not (work_dir / "best").is_dir():
            resize = [{"type": "Resize", "size": 16}]
            write_recipe(recipe, tiny_recipe_dict(
                digits_dir / "train", digits_dir / "val",
                data={"batch_size": 32, "eval_batch_size": 16, "train_pipeline": resize, "eval_pipeline": resize},
                train={"epochs": 1, "log_interval": 50},
            ))
            train(load_recipe(recipe), work_dir)
    return recipe, work_dir
