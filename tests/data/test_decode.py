"""The one decode rule (torchvision's decoder, Pillow for the rest) and the per-sample transform:
the same pixels as Pillow, the same crops and values as the baseline's float pipeline."""

import datasets
import numpy as np
import torch
from conftest import benchmark_data
from layouts import isolated_cache, write_mnist  # noqa: F401
from PIL import Image
from torchvision.transforms import v2

from hfcls.data.decode import SampleTransform, collate, decode
from hfcls.data.sources import load_source
from hfcls.data.transforms import Normalize, build_pipeline


def test_torchvision_decoder_equals_pillow_and_pillow_reads_the_rest(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    for suffix in ("png", "bmp"):  # torchvision decodes PNG; BMP goes to Pillow
        Image.fromarray(pixels).save(tmp_path / f"a.{suffix}")
        out = decode({"path": str(tmp_path / f"a.{suffix}"), "bytes": None}, to_rgb=True)
        assert out.dtype == torch.uint8 and torch.equal(out, torch.from_numpy(pixels).permute(2, 0, 1))
    Image.fromarray(pixels[..., 0], mode="L").save(tmp_path / "grey.png")
    assert decode({"path": str(tmp_path / "grey.png")}, to_rgb=True).shape == (3, 10, 12)
    assert decode({"path": str(tmp_path / "grey.png")}, to_rgb=False).shape == (1, 10, 12)


def test_grey_images_become_rgb_at_decode_time_when_to_rgb(tmp_path):
    written = write_mnist(tmp_path)
    ds = load_source({"type": "mnist", "root": str(tmp_path), "split": "test"}, where="data.train")
    ds = ds.cast_column("image", datasets.Image(decode=False))
    grey = written["test"][0][0]
    rgb = decode(ds[0]["image"], to_rgb=True)
    assert rgb.shape == (3, 28, 28)
    for channel in rgb:
        np.testing.assert_array_equal(channel.numpy(), grey)
    assert decode(ds[0]["image"], to_rgb=False).shape == (1, 28, 28)


def test_an_undecodable_image_becomes_an_invalid_placeholder_that_keeps_its_name(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    Image.new("RGB", (5, 5), (9, 9, 9)).save(tmp_path / "good.png")
    transform = SampleTransform(build_pipeline([{"type": "Resize", "size": [4, 4]}]), to_rgb=True)
    rows = {"image": [{"path": str(tmp_path / "good.png"), "bytes": None},
                      {"path": str(tmp_path / "bad.png"), "bytes": None}], "label": [1, 2]}
    out = transform(rows)
    batch = collate([{key: values[i] for key, values in out.items()} for i in range(2)])
    assert batch["pixel_values"].shape == (2, 3, 4, 4) and batch["pixel_values"].dtype == torch.uint8
    assert batch["labels"].tolist() == [1, 2] and batch["valid"].tolist() == [True, False]
    assert batch["bad_files"] == [f"{tmp_path / 'bad.png'} (not an image file in a format Pillow knows)"]
    assert int(batch["pixel_values"][1].max()) == 0


def test_train_transforms_crop_the_same_boxes_and_values_as_the_baseline(tmp_path):
    benchmark_data().jpeg_folder(tmp_path, classes=1, per_class=1, val_per_class=0)
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
