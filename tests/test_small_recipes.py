"""The fast small-image recipes (recipes/small/): what each one promises (in memory, translation,
flips only where the classes allow, label smoothing, EMA with warm-up, one-cycle LR, bf16 +
channels_last), each trained by `hfcls-train`'s main on data of its format, and the digits
recipe's accuracy on the real digits."""

import json

import pytest

from hfcls.recipe import load_recipe

from commands import ok
from conftest import REPO
from layouts import write_cifar10, write_mnist

SMALL = REPO / "recipes" / "small"
RECIPES = sorted(SMALL.glob("*.yaml"))
FLIPPED = {"small-convnet_1xb128_fashion-mnist", "small-convnet_1xb128_cifar10"}  # clothes and photos mirror
TINY_RUN = [
    "train.epochs=1",
    "data.num_workers=0",
    "evaluation.interval=1",
    "checkpoint.interval=1",
    "train.publish=false",
    "train.log_with=[]",
]


def test_the_family_covers_every_small_format():
    assert [p.stem for p in RECIPES] == [
        "small-convnet_1xb128_cifar10",
        "small-convnet_1xb128_fashion-mnist",
        "small-convnet_1xb128_mnist-5k",
        "small-convnet_1xb128_mnist",
        "small-convnet_1xb64_digits",
    ]


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_each_recipe_sets_the_fast_small_image_training(path):
    recipe = load_recipe(path)
    assert recipe.data.in_memory
    types = [t["type"] for t in recipe.data.train_pipeline]
    crop = next(t for t in recipe.data.train_pipeline if t["type"] == "RandomCrop")
    assert crop["padding"] >= 2  # translation: the crop is the image's own size, from a padded copy
    assert ("RandomHorizontalFlip" in types) == (path.stem in FLIPPED)
    assert "RandomVerticalFlip" not in types
    assert recipe.train.label_smoothing == 0.1
    assert recipe.train.ema["warmup"] and 0.9 < recipe.train.ema["decay"] < 1
    assert recipe.schedule.type == "linear" and recipe.schedule.warmup_epochs == 1  # one cycle: up, then down to 0
    assert recipe.train.mixed_precision == "bf16" and recipe.train.channels_last
    assert recipe.model.config["model_type"] == "small_convnet"
    # A run killed midway resumes: a checkpoint at least every 5 epochs, and before the last one.
    assert recipe.checkpoint.interval <= min(5, recipe.train.epochs // 2)


def data_overrides(stem, root, digits_dir):
    """Data in the recipe's own format (generated, or the real digits), and the overrides that point
    the recipe at it, with a batch the few generated images fill."""
    roots = [f"data.{split}.root={root}" for split in ("train", "val", "test")] + ["data.batch_size=4"]
    if stem.endswith("cifar10"):
        write_cifar10(root, per_batch=3)
        return roots
    if "mnist" in stem:  # mnist, its 5k subset and fashion-mnist read the same idx files
        write_mnist(root, counts=(12, 6))
        return roots
    return [f"data.train.path={digits_dir / 'train'}", f"data.val.path={digits_dir / 'val'}"]


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_hfcls_train_runs_each_recipe(path, tmp_path, digits_dir, command):
    overrides = data_overrides(path.stem, tmp_path / "data", digits_dir)
    work = tmp_path / "work"
    ok(command("hfcls-train", path, *overrides, *TINY_RUN, "--work-dir", work))
    rows = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["epoch"] == 1 and 0 <= rows[-1]["val_accuracy_top1"] <= 100
    # The EMA of the weights is kept (and is what evaluation and best/ use), in its own file
    assert (work / "checkpoints" / "epoch_1" / "ema.safetensors").is_file()
    assert json.loads((work / "best" / "config.json").read_text())["model_type"] == "small_convnet"


def test_the_digits_recipe_reaches_99_percent(tmp_path, digits_dir):
    """The recipe's own claim, on the real 360 val digits, seed 0 (benchmarks/README.md: 99.7-100 %)."""
    from hfcls.api import train

    recipe = load_recipe(
        SMALL / "small-convnet_1xb64_digits.yaml",
        [
            f"data.train.path={digits_dir / 'train'}",
            f"data.val.path={digits_dir / 'val'}",
            "data.num_workers=0",
            "train.publish=false",
            "train.log_with=[]",
        ],
    )
    assert train(recipe, tmp_path / "work")["accuracy_top1"] >= 99.0
