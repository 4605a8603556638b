"""hfcls-prepare's library side: scikit-learn's digits as a stratified image folder; smaller copies of a
recipe's splits as parquet shards."""

import datasets
import numpy as np
import pytest
from PIL import Image

from hfcls.data.prepare import prepare_digits
from hfcls.errors import HfclsError

from conftest import benchmark_data


def test_prepare_digits_writes_a_stratified_split(digits_dir):
    from sklearn.datasets import load_digits

    train = sorted(digits_dir.glob("train/*/*.png"))
    val = sorted(digits_dir.glob("val/*/*.png"))
    assert (len(train), len(val)) == (1437, 360)
    assert sorted(p.name for p in digits_dir.glob("train/*")) == [str(i) for i in range(10)]
    per_class = [len(list((digits_dir / "val" / str(c)).glob("*.png"))) for c in range(10)]
    assert min(per_class) >= 35 and max(per_class) <= 37
    digits = load_digits()
    sample = val[0]
    index = int(sample.stem)
    pixels = np.asarray(Image.open(sample))
    assert pixels.shape == (8, 8)
    np.testing.assert_array_equal(pixels, np.round(digits.images[index] * 255 / 16).astype(np.uint8))
    assert sample.parent.name == str(digits.target[index])


def test_prepare_refuses_to_overwrite(digits_dir):
    with pytest.raises(HfclsError, match="train is a non-empty folder already; nothing was written"):
        prepare_digits(digits_dir)


def test_shrink_writes_parquet_shards_the_disk_source_reads(tmp_path):
    from hfcls.data.prepare import shrink_splits
    from hfcls.data.sources import load_source

    make_data = benchmark_data()
    make_data.jpeg_folder(tmp_path / "photos", classes=2, per_class=3, val_per_class=1)
    small = tmp_path / "photos" / "val" / "class_001" / "00000.jpg"
    Image.new("RGB", (40, 30), (9, 90, 200)).save(small)  # already small: kept as it is
    dsets = datasets.DatasetDict(
        {
            split: load_source({"type": "imagefolder", "path": str(tmp_path / "photos" / split)}, "data." + split)
            for split in ("train", "val")
        }
    )
    written = shrink_splits(dsets, tmp_path / "out", short_side=100, rows_per_shard=4)
    assert {split: (images, shards) for split, (images, shards, _) in written.items()} == {
        "train": (6, 2),
        "val": (2, 1),
    }
    assert sorted(p.name for p in (tmp_path / "out" / "train").iterdir()) == [
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
    ]
    for split, source in dsets.items():
        copy = load_source({"type": "disk", "path": str(tmp_path / "out" / split)}, "data." + split)
        assert copy.features["label"].names == source.features["label"].names == ["class_000", "class_001"]
        assert copy["label"] == source["label"]  # same rows, same order
        for old, new in zip(source["image"], copy["image"]):
            assert min(new.size) == min(100, min(old.size))
            assert abs(new.size[0] / new.size[1] - old.size[0] / old.size[1]) < 0.01  # the same shape
    raw = load_source({"type": "disk", "path": str(tmp_path / "out" / "val")}, "data.val")
    assert raw.cast_column("image", datasets.Image(decode=False))[1]["image"]["bytes"] == small.read_bytes()
    with pytest.raises(HfclsError, match="out/train is a non-empty folder already; nothing was written"):
        shrink_splits(dsets, tmp_path / "out", short_side=100)
    shrink_splits({"val": dsets["val"]}, tmp_path / "out", short_side=10, overwrite=True)  # replaced whole
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["train", "val"]
    assert min(load_source({"type": "disk", "path": str(tmp_path / "out" / "val")}, "v")[0]["image"].size) == 10


def test_shrink_names_an_image_it_cannot_decode(tmp_path):
    from hfcls.data.prepare import shrink_splits
    from hfcls.data.sources import load_source

    for name in ("a", "b"):
        (tmp_path / "images" / name).mkdir(parents=True)
        Image.new("RGB", (300, 200)).save(tmp_path / "images" / name / "good.jpg")
    (tmp_path / "images" / "a" / "bad.jpg").write_bytes(b"\xff\xd8\xff broken")
    ds = load_source({"type": "imagefolder", "path": str(tmp_path / "images")}, "data.train")
    with pytest.raises(HfclsError, match=r"cannot decode image .*a/bad.jpg .*; remove or replace it"):
        shrink_splits({"train": ds}, tmp_path / "out", short_side=64)
