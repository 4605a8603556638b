"""One decode rule across the readers: the digits val set saved as 16-bit PNGs (and as a mix of 8- and
16-bit ones) scores, verifies and predicts exactly as the 8-bit original, in hfcls-eval, data.in_memory,
hfcls-verify and hfcls.pipeline alike."""

import numpy as np
import pytest
from PIL import Image

from hfcls.data.verify import verify_datasets
from hfcls.evaluation.checkpoint import evaluate_checkpoint
from hfcls.evaluation.request import EvalRequest
from hfcls.recipe import load_recipe

from conftest import ALL_METRICS
from layouts import png_16bit


def copy_val(digits_dir, out, sixteen_bit):
    """The digits val images with each file for which `sixteen_bit(index)` holds stored as 16-bit (v * 257)."""
    files = sorted((digits_dir / "val").glob("*/*.png"))
    for index, file in enumerate(files):
        target = out / file.parent.name / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        grey = np.asarray(Image.open(file))
        if sixteen_bit(index):
            target.write_bytes(png_16bit(grey.astype(np.uint16) * 257))
        else:
            target.write_bytes(file.read_bytes())
    return out


@pytest.fixture(scope="module")
def val_16bit(digits_dir, tmp_path_factory):
    return copy_val(digits_dir, tmp_path_factory.mktemp("val16"), lambda index: True)


@pytest.fixture(scope="module")
def val_mixed(digits_dir, tmp_path_factory):
    return copy_val(digits_dir, tmp_path_factory.mktemp("valmixed"), lambda index: index % 2 == 0)


def test_the_copy_really_is_16_bit(val_16bit, val_mixed):
    first = sorted(val_16bit.glob("*/*.png"))[0]
    assert Image.open(first).mode == "I;16" and np.asarray(Image.open(first)).max() > 255
    modes = {Image.open(path).mode for path in val_mixed.glob("*/*.png")}
    assert modes == {"I;16", "L"}


@pytest.mark.parametrize("which", ["val_16bit", "val_mixed"])
@pytest.mark.parametrize("in_memory", [False, True])
def test_16_bit_val_scores_as_the_8_bit_one(trained_digits, best_results, request, which, in_memory):
    recipe_path, work = trained_digits
    folder = request.getfixturevalue(which)
    recipe = load_recipe(recipe_path, [f"data.val.path={folder}", f"data.in_memory={str(in_memory).lower()}"])
    results = evaluate_checkpoint(
        EvalRequest(recipe, work / "best", metrics=ALL_METRICS, metric_options={"topk": [1, 3]})
    )
    assert results.metrics == best_results["metrics"]  # every metric, exactly
    assert best_results["metrics"]["accuracy_top1"] > 80


def test_verify_and_the_pipeline_read_16_bit_as_training_does(trained_digits, val_16bit, digits_dir, classifier):
    recipe_path, _ = trained_digits
    problems, total, _ = verify_datasets(load_recipe(recipe_path, [f"data.val.path={val_16bit}"]))
    assert problems == [] and total == 1797
    originals = sorted((digits_dir / "val").glob("*/*.png"))[:40]
    copies = [val_16bit / path.parent.name / path.name for path in originals]
    assert classifier([str(p) for p in copies], top_k=3) == classifier([str(p) for p in originals], top_k=3)
