"""hfcls-bench and the fast paths it measures: they compute what the baseline computes."""

import copy
import importlib.util
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2
from transformers import AutoModelForImageClassification

from hfcls.bench import baseline_loader, cli, hfcls_loader
from hfcls.data.loaders import SampleTransform, build_datasets, decode
from hfcls.data.transforms import Normalize, build_pipeline
from hfcls.engine import train
from hfcls.recipe import load_recipe

from conftest import REPO

DIGITS = REPO / "recipes/digits/resnet-tiny_1xb64_digits.yaml"


def load_make_data():
    spec = importlib.util.spec_from_file_location("make_data", REPO / "benchmarks/make_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generators_write_photo_jpegs_and_cifar_pickles(tmp_path):
    make_data = load_make_data()
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


def test_torchvision_decoder_equals_pillow_and_pillow_reads_the_rest(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    for suffix in ("png", "bmp"):  # torchvision decodes PNG; BMP goes to Pillow
        Image.fromarray(pixels).save(tmp_path / f"a.{suffix}")
        out = decode({"path": str(tmp_path / f"a.{suffix}"), "bytes": None}, to_rgb=True)
        assert out.dtype == torch.uint8 and torch.equal(out, torch.from_numpy(pixels).permute(2, 0, 1))
    Image.fromarray(pixels[..., 0], mode="L").save(tmp_path / "grey.png")
    assert decode({"path": str(tmp_path / "grey.png")}, to_rgb=True).shape == (3, 10, 12)
    assert decode({"path": str(tmp_path / "grey.png")}, to_rgb=False).shape == (1, 10, 12)


def test_train_transforms_crop_the_same_boxes_and_values_as_the_baseline(tmp_path):
    load_make_data().jpeg_folder(tmp_path, classes=1, per_class=1, val_per_class=0)
    path = str(next(tmp_path.glob("train/*/*.jpg")))
    specs = [{"type": "RandomResizedCrop", "size": 64}, {"type": "RandomHorizontalFlip"}]
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    crop = build_pipeline(specs).transforms[0]
    with Image.open(path) as pil:
        pil = pil.convert("RGB")
    uint8 = decode({"path": path}, to_rgb=True)
    baseline = v2.Compose([*build_pipeline(specs).transforms, v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                           v2.Normalize(mean, std)])
    fast = SampleTransform(build_pipeline(specs), to_rgb=True)
    for seed in range(5):
        torch.manual_seed(seed)
        box_pil = crop.make_params([pil])
        torch.manual_seed(seed)
        assert crop.make_params([uint8]) == box_pil
        torch.manual_seed(seed)
        expected = baseline(pil)
        torch.manual_seed(seed)
        sample = fast({"image": [{"path": path, "bytes": None}], "label": [0]})["pixel_values"][0]
        assert sample.dtype == torch.uint8 and sample.shape == (3, 64, 64)
        got = Normalize(mean, std)(sample[None])[0]
        assert got.shape == expected.shape and got.dtype == expected.dtype == torch.float32
        low, high = (-torch.tensor(mean) / torch.tensor(std)), (1 - torch.tensor(mean)) / torch.tensor(std)
        assert (got.amin((1, 2)) >= low - 1e-6).all() and (got.amax((1, 2)) <= high + 1e-6).all()
        # Same box, same flip: only the resampling kernels differ (Pillow's vs torch's antialias).
        grey_levels = ((got - expected) * torch.tensor(std)[:, None, None] * 255).abs()
        assert grey_levels.mean() < 1.5, seed


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory, digits_dir):
    """A digits ResNet trained in memory for 3 epochs (fast enough, clearly better than chance)."""
    work = tmp_path_factory.mktemp("digits_run")
    recipe = load_recipe(DIGITS, [f"data.train.path={digits_dir / 'train'}", f"data.val.path={digits_dir / 'val'}",
                                  "data.in_memory=true", "data.num_workers=0", "train.epochs=3",
                                  f"work_dir={work}"])
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
    """(recipe, model, the digits splits, Normalize), read in this process."""
    recipe, model = digits_model
    recipe.data.num_workers = 0
    dsets = build_datasets(recipe.data, recipe.seed, ("train", "val"))
    return recipe, model, dsets, Normalize(recipe.data.mean, recipe.data.std)


@pytest.mark.slow
def test_fast_eval_paths_predict_what_the_baseline_predicts(digits_val):
    recipe, model, dsets, normalize = digits_val
    data = recipe.data
    baseline = scores(model, baseline_loader(dsets["val"], data.eval_pipeline, data, 64, False, 0))
    data.in_memory = False
    loader = scores(model, hfcls_loader(recipe, dsets, "val", 64, torch.device("cpu")), normalize)
    data.in_memory = True
    in_memory = scores(model, hfcls_loader(recipe, dsets, "val", 64, torch.device("cpu")), normalize)
    assert baseline.shape == (360, 10) and baseline.argmax(-1).unique().numel() == 10
    assert torch.equal(loader, in_memory)  # the same decoder and kernels, once per image or per epoch
    assert torch.equal(loader.argmax(-1), baseline.argmax(-1))
    assert (loader - baseline).abs().max() < 1e-3


def test_bench_cli_reports_every_variant_and_ratio(tiny_recipe, tmp_path, capsys):
    out = tmp_path / "bench.json"
    results = cli([str(tiny_recipe), "--what", "train", "--baseline", "--synthetic", "--steps", "2",
                   "--warmup", "1", "--rounds", "2", "--json", str(out), "train.channels_last=true"])
    printed = capsys.readouterr().out
    names = ["baseline (HF examples)", "hfcls loader, fp32 NCHW", "hfcls loader, recipe (fp32 channels_last)",
             "synthetic (compute only)"]
    assert [r["variant"] for r in results] == names
    report = json.loads(out.read_text())
    assert report["machine"]["cpus"] >= 1 and report["settings"]["what"] == "train"
    for row in report["results"]:
        assert row["images_per_sec"] > 0 and row["step_ms_median"] > 0 and row["measured_steps"] == 2
        assert row["peak_mem_mib"] > 50 and row["batch_size"] == 8
    assert printed.startswith("machine: ") and printed.count("/ baseline: ") == 3
    for name in names[1:]:
        assert f"ratio {name} / baseline: " in printed


@pytest.mark.parametrize("what", ["data", "eval"])
def test_bench_cli_data_and_eval_in_memory(tiny_recipe, what):
    results = cli([str(tiny_recipe), "--what", what, "--baseline", "--steps", "2", "--warmup", "1", "--rounds", "1",
                   "data.in_memory=true", "data.train_pipeline=[{type: RandomCrop, size: 12, padding: 2}]"])
    assert [r["variant"] for r in results] == ["baseline (HF examples)", "hfcls in-memory, fp32 NCHW"]
    assert results[1]["num_workers"] == 0 and all(r["images_per_sec"] > 0 for r in results)


def test_bench_cli_user_errors_exit_2(tiny_recipe, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli([str(tiny_recipe), "--what", "eval", "data.val=null"])
    assert exit_info.value.code == 2
    assert "--what eval needs a data.val source" in capsys.readouterr().err


@pytest.mark.slow
def test_bf16_channels_last_eval_keeps_the_fp32_accuracy(digits_val):
    """The zoo recipes' speed settings (bf16 autocast, channels_last) against fp32 NCHW."""
    recipe, model, dsets, normalize = digits_val
    loader = hfcls_loader(recipe, dsets, "val", 64, torch.device("cpu"))
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
