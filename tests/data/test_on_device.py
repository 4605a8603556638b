"""Decoding on the device (data.decode: cpu here, cuda on a GPU): the worker loader's batches, resume,
metrics and errors, from workers that only read the files."""

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from hfcls.data.build import build_datasets, build_eval_loader, build_train_loader
from hfcls.data.on_device import DevicePipeline, decode_device, on_device_loader
from hfcls.engine.setup import accelerator_session
from hfcls.engine.validation import validation_metrics
from hfcls.errors import HfclsError
from hfcls.models import build_model
from hfcls.predict.forward import predict
from hfcls.predict.inputs import recipe_inputs
from hfcls.recipe import load_recipe

from conftest import benchmark_data, tiny_recipe_dict, write_recipe

TRAIN = [{"type": "RandomResizedCrop", "size": 16, "scale": [0.3, 1.0]}, {"type": "RandomHorizontalFlip"}]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/run_gpu.sh runs it)")


def mixed_folder(root, per_class: int, seed: int):
    """root/<class>/<i>.jpg|png: noise of different sizes, colour and grey, mostly JPEGs, some PNGs."""
    rng = np.random.default_rng(seed)
    for name in ("cat", "dog", "fox"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            height, width = rng.integers(18, 40, 2)
            pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            image = Image.fromarray(pixels if i % 4 else pixels[..., 0])  # every 4th one grey
            image.save(root / name / f"{i}.{'png' if i % 3 == 0 else 'jpg'}", quality=90)
    return root


@pytest.fixture
def mixed_files(tmp_path):
    """A recipe path on 3 x 8 training and 3 x 4 validation images, with MixUp and CutMix."""
    train, val = mixed_folder(tmp_path / "train", 8, seed=0), mixed_folder(tmp_path / "val", 4, seed=1)
    # scaled_decode off: the device decoders decode whole images, and the worker loaders' JPEGs decoded at a
    # reduced scale (data.scaled_decode's default) differ from them by resampling, not bit for bit.
    data = {"train_pipeline": TRAIN, "scaled_decode": "off"}
    recipe = tiny_recipe_dict(train, val, data=data, train={"mixup_alpha": 0.4, "cutmix_alpha": 1.0})
    return write_recipe(tmp_path / "mixed.yaml", recipe)


def changed_recipe(path, **data):
    """The recipe file `path` with data.* changed, as a new file beside it."""
    import yaml

    raw = yaml.safe_load(path.read_text())
    raw["data"].update(data)
    return write_recipe(path.with_name("changed.yaml"), raw)


def named_files(bad_files: list) -> list:
    """The files of a batch's bad_files, without the reason each carries: 'path (why)' -> 'path'."""
    return [name.split(" (")[0] for name in bad_files]


def epoch_batches(recipe, decode: str, epoch: int = 1, state=None) -> list:
    recipe = load_recipe(recipe, [f"data.decode={decode}"])
    dsets = build_datasets(recipe.data, recipe.seed)
    with accelerator_session(recipe) as accelerator:
        loader = build_train_loader(recipe, dsets["train"], accelerator)
        loader.set_epoch(epoch)
        if state is not None:
            loader.load_state_dict(state)
        return list(loader)


def assert_same_batches(expected: list, got: list) -> None:
    assert len(expected) == len(got)
    for a, b in zip(expected, got):
        assert set(a) == set(b)
        for key in ("pixel_values", "labels", "valid"):
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
        assert named_files(a["bad_files"]) == named_files(b["bad_files"])  # each decoder says why in its words


def test_device_batches_equal_the_worker_loaders(mixed_files):
    """Same seeds, same crops, flips, MixUp/CutMix, bit for bit: each sample is drawn by v2's own code."""
    for epoch in (0, 1):
        workers = epoch_batches(mixed_files, "workers", epoch)
        assert_same_batches(workers, epoch_batches(mixed_files, "cpu", epoch))
    assert workers[0]["pixel_values"].shape == (8, 3, 16, 16) and workers[0]["labels"].shape == (8, 3)  # mixed


def test_a_mid_epoch_resume_replays_the_same_batches(mixed_files):
    full = epoch_batches(mixed_files, "cpu", epoch=2)
    assert len(full) == 3
    assert_same_batches(full[1:], epoch_batches(mixed_files, "cpu", epoch=2, state={"batches": 1}))


def test_one_worker_reads_what_the_main_process_reads(mixed_files):
    """The files and draws come from DataLoader workers like any batch; the worker count changes nothing."""
    one_worker = changed_recipe(mixed_files, num_workers=1)
    assert_same_batches(epoch_batches(mixed_files, "cpu"), epoch_batches(one_worker, "cpu"))


def evaluated(recipe_path, decodes) -> dict:
    """{decode: Predictions} of a fresh tiny model on the val split, eval batch 5."""
    recipe = load_recipe(recipe_path)
    dsets = build_datasets(recipe.data, recipe.seed)
    torch.manual_seed(0)
    model = build_model(recipe.model, dsets["train"].features["label"].names).eval()
    outputs = {}
    with accelerator_session(recipe) as accelerator:
        model = model.to(accelerator.device)
        inputs = recipe_inputs(recipe, accelerator.device)
        for decode in decodes:
            recipe.data.decode = decode
            loader = build_eval_loader(recipe.data, dsets["val"], accelerator, recipe.seed, batch_size=5)
            outputs[decode] = predict(model, loader, inputs, accelerator=accelerator)
    return outputs


def test_evaluation_through_it_gives_the_worker_loaders_metrics(mixed_files):
    outputs = evaluated(mixed_files, ("workers", "cpu"))
    workers, cpu = outputs["workers"].present(), outputs["cpu"].present()
    assert workers.keys() == cpu.keys() and all(torch.equal(workers[name], cpu[name]) for name in workers)
    assert len(outputs["cpu"].logits) == 12  # every image once
    assert validation_metrics(outputs["cpu"], [1, 2]) == validation_metrics(outputs["workers"], [1, 2])


def test_undecodable_files_are_marked_as_the_worker_loader_marks_them(mixed_files, tmp_path):
    (tmp_path / "train" / "cat" / "0.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")  # no header
    good = (tmp_path / "train" / "dog" / "1.jpg").read_bytes()
    (tmp_path / "train" / "dog" / "1.jpg").write_bytes(good[: len(good) // 3])  # a header, then cut off
    recipe = changed_recipe(mixed_files, skip_bad_images=True, train_pipeline=[{"type": "Resize", "size": [16, 16]}])
    workers = epoch_batches(recipe, "workers")
    on_device = epoch_batches(recipe, "cpu")
    assert_same_batches(workers, on_device)
    bad = sorted(f.split("/train/")[1] for batch in on_device for f in named_files(batch["bad_files"]))
    # One without a header (the workers see it), one cut off (the decoder refuses it): both become the
    # worker loader's black stand-ins (equal above, mixed into their batches), marked invalid.
    assert bad == ["cat/0.jpg", "dog/1.jpg"]


def test_transforms_outside_the_checked_list_are_errors_naming_them():
    with pytest.raises(
        HfclsError,
        match=r"data.train_pipeline\[1\]: RandAugment cannot run with data.decode=cpu; "
        r"supported: Resize, CenterCrop, RandomCrop, RandomResizedCrop first, then "
        r"RandomHorizontalFlip, RandomVerticalFlip \(or set data.decode=workers\)",
    ):
        DevicePipeline(
            [{"type": "RandomResizedCrop", "size": 8}, {"type": "RandAugment"}], "data.train_pipeline", "cpu"
        )
    with pytest.raises(HfclsError, match=r"\[1\]: RandomResizedCrop cannot run"):  # a flip first: order matters
        DevicePipeline([{"type": "RandomHorizontalFlip"}, {"type": "RandomResizedCrop", "size": 8}], "p", "cuda")


def test_images_that_come_out_of_different_sizes_are_an_error(mixed_files):
    with pytest.raises(
        HfclsError,
        match=r"data.train_pipeline: data.decode=cpu stacks the images .* came out "
        r"\(3, 16, \d+\) and \(3, \d+, 16\); .* give Resize \[height, width\]",
    ):
        epoch_batches(changed_recipe(mixed_files, train_pipeline=[{"type": "Resize", "size": 16}]), "cpu")


def test_cuda_without_a_gpu_names_the_key_and_the_fix():
    with pytest.raises(
        HfclsError,
        match=r"^data.decode=cuda decodes on the GPU, and this process has none \(it runs "
        r"on cpu\); set data.decode=cpu .* or data.decode=workers$",
    ):
        decode_device("cuda", torch.device("cpu"))
    assert decode_device("cpu", torch.device("cpu")) == torch.device("cpu")


def test_in_memory_and_streams_keep_their_own_decoding(mixed_files):
    with pytest.raises(
        HfclsError,
        match="data.in_memory decodes each split once itself; leave data.decode at workers or set data.in_memory=false",
    ):
        load_recipe(mixed_files, ["data.in_memory=true", "data.decode=cpu"])
    recipe = load_recipe(mixed_files, ["data.decode=cpu"])
    stream = datasets.Dataset.from_dict({"image": [None], "label": [0]}).to_iterable_dataset()
    with accelerator_session(recipe) as accelerator:
        with pytest.raises(
            HfclsError,
            match=r"a stream \(streaming: true\) decodes in its workers: set "
            "data.decode=workers",
        ):
            on_device_loader(stream, recipe.data, 0, accelerator, train=True, workers=0, batch_size=8)


# ----------------------------------------------------------------------------- on a GPU (benchmarks/run_gpu.sh)


@pytest.fixture
def real_photos(tmp_path):
    """A recipe on 3 x 8 + 3 x 8 of the benchmark's 500x375 photo JPEGs, at 64 pixels."""
    benchmark_data().jpeg_folder(tmp_path / "photos", classes=3, per_class=8, val_per_class=8)
    recipe = tiny_recipe_dict(
        tmp_path / "photos" / "train",
        tmp_path / "photos" / "val",
        data={
            "train_pipeline": [{"type": "RandomResizedCrop", "size": 64}, {"type": "RandomHorizontalFlip"}],
            "eval_pipeline": [{"type": "Resize", "size": 72}, {"type": "CenterCrop", "size": 64}],
        },
    )
    return write_recipe(tmp_path / "real_photos.yaml", recipe)


def level_difference(a: torch.Tensor, b: torch.Tensor) -> tuple:
    difference = (a.float() - b.float().to(a.device)).abs()
    return difference.mean().item(), difference.max().item()


@CUDA
def test_nvjpeg_batches_match_the_cpu_decoders_within_two_levels(real_photos):
    """Two conforming JPEG decoders may differ: nvJPEG's IDCT and chroma upsampling are not
    libjpeg-turbo's, by about the quantisation error of quality 90 (a level or two). The crops,
    flips, order and labels are the same, so a mean difference above 2 levels would be a bug."""
    cpu, cuda = epoch_batches(real_photos, "cpu"), epoch_batches(real_photos, "cuda")
    assert len(cpu) == len(cuda) == 3
    for a, b in zip(cpu, cuda):
        assert b["pixel_values"].is_cuda and torch.equal(a["valid"].cpu(), b["valid"].cpu())
        assert torch.equal(a["labels"].cpu(), b["labels"].cpu())
        mean, largest = level_difference(b["pixel_values"], a["pixel_values"])
        print(f"nvJPEG against the CPU decoder, one batch: mean |difference| {mean:.3f} levels, largest {largest:.0f}")
        assert mean < 2


@CUDA
def test_nvjpeg_evaluation_gives_the_cpu_predictions(real_photos):
    outputs = evaluated(real_photos, ("workers", "cuda"))
    logits_gap = (outputs["workers"].logits - outputs["cuda"].logits).abs().max().item()
    agree = (outputs["workers"].logits.argmax(1) == outputs["cuda"].logits.argmax(1)).float().mean().item()
    print(
        f"nvJPEG against the CPU decoder, evaluation: largest logit difference {logits_gap:.4f}, "
        f"{agree:.0%} of the predictions the same"
    )
    assert torch.equal(outputs["workers"].labels, outputs["cuda"].labels) and len(outputs["cuda"].logits) == 24
    assert agree >= 0.9
