"""The one decode rule (torchvision's decoder, Pillow for the rest) and the per-sample transform:
the same pixels as Pillow, the same crops and values as the baseline's float pipeline."""

import io

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from hfcls.data.decode import ImageRefused, SampleTransform, collate, decode, fitting_scale
from hfcls.data.seeding import seeded
from hfcls.data.sources import load_source
from hfcls.data.transforms import build_pipeline
from hfcls.predict.inputs import Normalize

from conftest import benchmark_data
from layouts import isolated_cache, png_16bit, png_header_only, write_mnist  # noqa: F401


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
    rows = {
        "image": [
            {"path": str(tmp_path / "good.png"), "bytes": None},
            {"path": str(tmp_path / "bad.png"), "bytes": None},
        ],
        "label": [1, 2],
    }
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
    baseline = v2.Compose(
        [
            *build_pipeline(specs).transforms,
            v2.ToImage(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean, std),
        ]
    )
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


# ----------------------------------------------------------------------------- scaled decoding (data.scaled_decode)

# The bound on what scaled decoding may change (grey levels of 255, mean absolute difference against the
# full decode, same crop): measured 0.57-0.80 on average and 1.57-1.76 at most per image for crops to
# 32-64 px of these photos. Same-crop resamplers differ by 0.03-0.15 (Pillow's against torchvision's,
# from the same full decode); a crop moved by one output pixel or a flip differs by tens of levels.
SCALED_MEAN, SCALED_WORST = 1.0, 2.5


def photos(tmp_path, count):
    """`count` of the benchmark's real-photo JPEGs, 500x375 or 375x500."""
    benchmark_data().jpeg_folder(tmp_path, classes=1, per_class=count, val_per_class=0)
    return sorted(str(path) for path in tmp_path.glob("train/*/*.jpg"))


def test_scaled_decoding_draws_the_crop_first_and_differs_from_the_full_decode_by_resampling_only(tmp_path):
    files = photos(tmp_path, 4)
    differences, scales = [], set()
    for side in (40, 112, 224):  # at 224 no crop of these photos, nor the whole photo, is twice the output
        specs = [{"type": "RandomResizedCrop", "size": side}, {"type": "RandomHorizontalFlip"}]
        full, scaled = (SampleTransform(build_pipeline(specs), to_rgb=True, scaled=on) for on in (False, True))
        crop = full.pipeline.transforms[0]
        for seed in range(12):
            row = {"path": files[seed % 4], "bytes": None}
            expected, got = seeded(full.transform, seed, row), seeded(scaled.transform, seed, row)
            with Image.open(row["path"]) as pil:  # the crop the full pipeline draws, and the scale it allows
                box = seeded(crop.make_params, seed, [torch.empty(3, pil.height, pil.width)])
            scale = fitting_scale((box["height"], box["width"]), (side, side))
            scales.add(scale)
            if scale == 1:  # a crop too large to decode smaller: bit for bit the full pipeline
                assert torch.equal(got, expected), (side, seed)
            else:
                assert got.shape == expected.shape == (3, side, side)
                differences.append((got.float() - expected.float()).abs().mean().item())
    assert scales == {1, 2, 4, 8}
    assert max(differences) <= SCALED_WORST and sum(differences) / len(differences) <= SCALED_MEAN


def test_scaled_evaluation_resizes_the_whole_image_as_the_full_decode_does(tmp_path):
    files = photos(tmp_path, 3)
    specs = [{"type": "Resize", "size": 64}, {"type": "CenterCrop", "size": 56}]  # 500x375 -> 1/4 still covers it
    full, scaled = (SampleTransform(build_pipeline(specs), to_rgb=True, scaled=on) for on in (False, True))
    for path in files:
        expected, got = full.transform({"path": path}), scaled.transform({"path": path})
        assert got.shape == expected.shape == (3, 56, 56)
        assert (got.float() - expected.float()).abs().mean() <= SCALED_WORST
    grey = tmp_path / "grey.jpg"
    Image.open(files[0]).convert("L").save(grey)  # a grey JPEG keeps one channel unless to_rgb
    kept = SampleTransform(build_pipeline(specs), to_rgb=False, scaled=True).transform({"path": str(grey)})
    assert kept.shape == (1, 56, 56)
    assert (kept.float() - full.transform({"path": str(grey)})[0].float()).abs().mean() <= SCALED_WORST


def test_progressive_resizing_sets_the_crops_side_and_back(tmp_path):
    files = photos(tmp_path, 1)
    transform = SampleTransform(build_pipeline([{"type": "RandomResizedCrop", "size": 32}]), to_rgb=True, scaled=True)
    transform.set_size(24)
    assert transform.transform({"path": files[0]}).shape == (3, 24, 24)
    assert transform.pipeline(torch.zeros(3, 50, 50, dtype=torch.uint8)).shape == (3, 24, 24)  # placeholders too
    transform.set_size(None)
    assert transform.transform({"path": files[0]}).shape == (3, 32, 32)


# ----------------------------------------------------------------------------- bit depths and the pixel limit


def test_16_bit_pngs_grey_and_colour_decode_as_their_8_bit_originals(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    expected = torch.from_numpy(rgb).permute(2, 0, 1)
    out = decode({"bytes": png_16bit(rgb.astype(np.uint16) * 257), "path": None}, to_rgb=True)
    assert out.dtype == torch.uint8 and torch.equal(out, expected)
    buffer = io.BytesIO()
    Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(buffer, format="PNG")  # Pillow's I;16
    grey = decode({"bytes": buffer.getvalue()}, to_rgb=False)
    assert grey.dtype == torch.uint8 and torch.equal(grey[0], expected[0])
    # Values between two 8-bit levels keep their top 8 bits, as v2.ToDtype(torch.uint8, scale=True) does.
    between = np.array([[0, 255, 256, 65535, 32896]], dtype=np.uint16)
    assert decode({"bytes": png_16bit(between)}, to_rgb=False)[0, 0].tolist() == [0, 0, 1, 255, 128]


def test_the_pillow_path_follows_the_same_rule(tmp_path):
    grey = np.random.default_rng(2).integers(0, 65536, (5, 7), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "a.tiff")  # TIFF: torchvision does not read it, Pillow does
    Image.fromarray(grey).save(tmp_path / "a.png")
    tiff, png = (decode({"path": str(tmp_path / f"a.{kind}")}, to_rgb=True) for kind in ("tiff", "png"))
    assert torch.equal(tiff, png) and torch.equal(tiff[1], torch.from_numpy((grey >> 8).astype(np.uint8)))
    colour = np.random.default_rng(5).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(colour).quantize(8).save(tmp_path / "p.bmp")
    assert Image.open(tmp_path / "p.bmp").mode == "P"
    # to_rgb false keeps the channels an image has; a palette image gives its colours, not its indices
    colours = F.pil_to_tensor(Image.open(tmp_path / "p.bmp").convert("RGB"))
    assert torch.equal(decode({"path": str(tmp_path / "p.bmp")}, to_rgb=False), colours)
    Image.fromarray(grey).convert("L").convert("LA").save(tmp_path / "la.tiff")
    assert decode({"path": str(tmp_path / "la.tiff")}, to_rgb=False).shape == (2, 5, 7)


@pytest.mark.parametrize("array, mode", [(np.zeros((4, 4), np.float32), "F"), (np.zeros((4, 4), np.int32), "I")])
def test_32_bit_and_float_images_are_refused(tmp_path, array, mode):
    Image.fromarray(array).save(tmp_path / "x.tiff")
    assert Image.open(tmp_path / "x.tiff").mode == mode
    with pytest.raises(ImageRefused, match=f"Pillow mode {mode}.*no fixed range"):
        decode({"path": str(tmp_path / "x.tiff")}, to_rgb=True)


def test_the_pixel_limit_refuses_from_the_header_before_decoding():
    # 20000 x 20000 in 400 bytes: decoding it would need 1.2 GB and fail on the missing data.
    bomb = {"bytes": png_header_only(20_000, 20_000), "path": None}
    with pytest.raises(
        ImageRefused,
        match=r"more than 178,956,970 pixels, more than data.max_image_pixels "
        r"\(89,478,485\)",
    ):
        decode(bomb, to_rgb=True)
    with pytest.raises(
        ImageRefused,
        match=r"9000 x 9000 = 81,000,000 pixels, more than data.max_image_pixels "
        r"\(1,000,000\)",
    ):
        decode({"bytes": png_header_only(9000, 9000)}, to_rgb=True, max_pixels=1_000_000)
    small = {"bytes": png_16bit(np.zeros((4, 5), np.uint16))}
    assert decode(small, to_rgb=True, max_pixels=20).shape == (3, 4, 5)  # 20 pixels: at the limit, kept
    with pytest.raises(ImageRefused, match=r"5 x 4 = 20 pixels, more than data.max_image_pixels \(19\)"):
        decode(small, to_rgb=True, max_pixels=19)


def test_refused_and_undecodable_images_become_placeholders_that_say_why(tmp_path):
    transform = SampleTransform(build_pipeline([{"type": "Resize", "size": [4, 4]}]), to_rgb=True, max_pixels=100)
    rows = {
        "image": [
            {"path": "big.png", "bytes": png_header_only(11, 10)},
            {"path": "ok.png", "bytes": png_16bit(np.zeros((10, 10), np.uint16))},
        ],
        "label": [0, 1],
    }
    out = transform(rows)
    assert out["valid"] == [False, True]
    assert out["file"] == [
        "big.png (11 x 10 = 110 pixels, more than data.max_image_pixels (100); shrink the image or raise the limit)",
        "ok.png",
    ]


def test_mixed_bit_depths_stack_into_one_uint8_batch(tmp_path):
    grey = np.random.default_rng(3).integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "8.png")
    (tmp_path / "16.png").write_bytes(png_16bit(grey.astype(np.uint16) * 257))
    transform = SampleTransform(build_pipeline([]), to_rgb=True)
    out = transform(
        {"image": [{"path": str(tmp_path / f"{bits}.png"), "bytes": None} for bits in (8, 16)], "label": [0, 0]}
    )
    batch = collate([{key: values[i] for key, values in out.items()} for i in range(2)])
    assert batch["pixel_values"].dtype == torch.uint8 and torch.equal(
        batch["pixel_values"][0], batch["pixel_values"][1]
    )


def test_inference_decodes_files_and_pillow_images_by_the_same_rule(tmp_path):
    from hfcls.inference import to_uint8_tensor

    grey = np.random.default_rng(4).integers(0, 65536, (5, 6), dtype=np.uint16)
    (tmp_path / "a.png").write_bytes(png_16bit(grey))
    from_file = to_uint8_tensor(tmp_path / "a.png")
    assert torch.equal(from_file, decode({"path": str(tmp_path / "a.png")}, to_rgb=True))
    assert torch.equal(to_uint8_tensor(Image.fromarray(grey)), from_file)  # an I;16 Pillow image
    with pytest.raises(ImageRefused, match="data.max_image_pixels"):
        to_uint8_tensor(tmp_path / "a.png", max_pixels=29)
