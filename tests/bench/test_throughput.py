"""hfcls-bench's measurements and the fast paths it measures: they compute what the baseline computes."""

import copy
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageClassification

from hfcls.api import train
from hfcls.bench.baseline import baseline_loader
from hfcls.bench.throughput import bench
from hfcls.data.build import build_datasets, build_eval_loader
from hfcls.engine.setup import accelerator_session
from hfcls.errors import HfclsError
from hfcls.predict.inputs import ModelInputs
from hfcls.recipe import load_recipe

from conftest import REPO, benchmark_data

pytestmark = pytest.mark.xdist_group("bench_digits_model")  # one worker builds the module's fixture, once

DIGITS = REPO / "recipes/digits/resnet-tiny_1xb64_digits.yaml"


def test_generators_write_photo_jpegs_and_cifar_pickles(tmp_path):
    make_data = benchmark_data()
    assert make_data.jpeg_folder(tmp_path / "jpeg", classes=2, per_class=3, val_per_class=1) == 8
    files = sorted((tmp_path / "jpeg/train").glob("*/*.jpg"))
    assert len(files) == 6
    for file in files:
        with Image.open(file) as image:
            assert image.format == "JPEG" and sorted(image.size) == [375, 500]
            assert np.asarray(image).std() > 10  # a photo, not a flat colour
    assert make_data.cifar_pickle(tmp_path / "cifar", count=25, test_count=5, per_file=10) == 30
    with open(tmp_path / "cifar/data_batch_3", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    assert batch[b"data"].shape == (5, 3072) and batch[b"data"].dtype == np.uint8
    assert len(batch[b"labels"]) == 5 and set(batch[b"labels"]) <= set(range(10))
    assert not (tmp_path / "cifar/data_batch_4").exists() and (tmp_path / "cifar/batches.meta").is_file()


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory, digits_dir):
    """A digits ResNet trained in memory for 3 epochs (fast enough, clearly better than chance)."""
    work = tmp_path_factory.mktemp("digits_run")
    recipe = load_recipe(
        DIGITS,
        [
            f"data.train.path={digits_dir / 'train'}",
            f"data.val.path={digits_dir / 'val'}",
            "data.in_memory=true",
            "data.num_workers=0",
            "train.epochs=3",
            f"work_dir={work}",
        ],
    )
    metrics = train(recipe, work)
    assert metrics["accuracy_top1"] > 50
    return recipe, AutoModelForImageClassification.from_pretrained(work / "latest").eval()


def scores(model, loader, normalize=None):
    out = []
    with torch.inference_mode():
        for batch in loader:
            images = normalize(batch["pixel_values"]) if normalize else batch["pixel_values"]
            probabilities = model(pixel_values=images).logits.softmax(-1)
            out.append(probabilities[batch["valid"]] if "valid" in batch else probabilities)  # drop padding
    return torch.cat(out)


@pytest.fixture
def digits_val(digits_model):
    """(recipe, model, the digits splits, the input adapter), read in this process."""
    recipe, model = digits_model
    recipe.data.num_workers = 0
    dsets = build_datasets(recipe.data, recipe.seed, ("train", "val"))
    return recipe, model, dsets, ModelInputs(recipe.data.mean, recipe.data.std)


def hfcls_scores(recipe, model, dsets, normalize, in_memory: bool):
    """The val split's scores through the data door's eval loader (workers or in memory), batch 64."""
    data = copy.deepcopy(recipe.data)
    data.in_memory = in_memory
    with accelerator_session(recipe) as accelerator:
        return scores(model, build_eval_loader(data, dsets["val"], accelerator, recipe.seed, batch_size=64), normalize)


@pytest.mark.slow
def test_fast_eval_paths_predict_what_the_baseline_predicts(digits_val):
    recipe, model, dsets, normalize = digits_val
    data = recipe.data
    baseline = scores(model, baseline_loader(dsets["val"], data.eval_pipeline, data, 64, False, 0))
    loader = hfcls_scores(recipe, model, dsets, normalize, in_memory=False)
    in_memory = hfcls_scores(recipe, model, dsets, normalize, in_memory=True)
    assert baseline.shape == (360, 10) and baseline.argmax(-1).unique().numel() == 10
    assert torch.equal(loader, in_memory)  # the same decoder and kernels, once per image or per epoch
    assert torch.equal(loader.argmax(-1), baseline.argmax(-1))
    assert (loader - baseline).abs().max() < 1e-3


@pytest.mark.parametrize("what", ["data", "eval"])
def test_bench_data_and_eval_in_memory(tiny_recipe, what):
    recipe = load_recipe(
        tiny_recipe, ["data.in_memory=true", "data.train_pipeline=[{type: RandomCrop, size: 12, padding: 2}]"]
    )
    results = bench(recipe, what, steps=2, warmup=1, rounds=1, baseline=True)["results"]
    assert [r["variant"] for r in results] == ["baseline (HF examples)", "hfcls in-memory, fp32 NCHW"]
    assert results[1]["num_workers"] == 0 and all(r["images_per_sec"] > 0 for r in results)
    assert all(r["measured_steps"] == 2 for r in results)


def test_bench_needs_the_split_it_measures(tiny_recipe):
    with pytest.raises(HfclsError, match="^what eval needs a data.val source"):
        bench(load_recipe(tiny_recipe, ["data.val=null"]), "eval")
    with pytest.raises(HfclsError, match="^what must be one of data, train, eval, got 'infer'"):
        bench(load_recipe(tiny_recipe), "infer")


@pytest.mark.slow
def test_bf16_channels_last_eval_keeps_the_fp32_accuracy(digits_val):
    """The zoo recipes' speed settings (bf16 autocast, channels_last) against fp32 NCHW."""
    recipe, model, dsets, normalize = digits_val
    with accelerator_session(recipe) as accelerator:
        loader = build_eval_loader(recipe.data, dsets["val"], accelerator, recipe.seed, batch_size=64)
        labels = torch.cat([batch["labels"][batch["valid"]] for batch in loader])
        fp32 = scores(model, loader, normalize)
        fast_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        fast_inputs = lambda images: normalize(images).contiguous(memory_format=torch.channels_last)  # noqa: E731
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = scores(fast_model, loader, fast_inputs).float()
    accuracy = lambda probabilities: (probabilities.argmax(-1) == labels).float().mean().item()  # noqa: E731
    assert abs(accuracy(fast) - accuracy(fp32)) <= 1 / len(labels)  # at most one image's prediction moves
    assert (fast.argmax(-1) == fp32.argmax(-1)).float().mean() >= 0.99
    assert (fast - fp32).abs().max() < 0.05  # bf16 keeps ~3 significant digits


def test_models_are_evaluated_in_place_of_the_recipes_interleaved(digits_int8):
    """--models: the float32 PyTorch folder against its int8 graph, on the recipe's eval loader, in turns."""
    recipe, int8, _ = digits_int8
    best = recipe.parent / "work" / "best"
    measured = bench(load_recipe(recipe), "eval", steps=2, warmup=0, rounds=1, models=[best, int8])
    results = measured["results"]
    assert [r["variant"] for r in results] == [f"hfcls loader, {best}", f"hfcls loader, {int8}"]
    assert all(r["measured_steps"] == 2 and r["images_per_sec"] > 0 for r in results)
    with pytest.raises(HfclsError, match="^models are evaluated: use what eval"):
        bench(load_recipe(recipe), "train", models=[int8])
