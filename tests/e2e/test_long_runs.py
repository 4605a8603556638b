"""Full-length training runs of shipped recipes: the accuracy they are documented to reach."""

from hfcls.api import train
from hfcls.recipe import load_recipe

from conftest import REPO


def test_in_memory_mode_trains_digits_to_98_percent(tmp_path, digits_dir):
    recipe = load_recipe(
        REPO / "recipes/digits/resnet-tiny_1xb64_digits.yaml",
        [
            f"data.train.path={digits_dir / 'train'}",
            f"data.val.path={digits_dir / 'val'}",
            "data.in_memory=true",
            f"work_dir={tmp_path / 'work'}",
        ],
    )
    metrics = train(recipe, recipe.work_dir)
    assert metrics["accuracy_top1"] >= 98.0, metrics
