"""Each layout, written as the originals are, reads back with exactly its pixels, labels and class names."""

import os

import datasets
import numpy as np
import pytest

from hfcls.data.formats.idx import FASHION_MNIST_CLASSES
from hfcls.data.sources import load_source

from layouts import CIFAR10_NAMES, isolated_cache, write_cifar10, write_cifar100, write_imagenet, write_mnist  # noqa: F401


def load(**spec):
    return load_source(spec, where="data.train")


def assert_images(ds, expected_images, expected_labels):
    assert list(ds["label"]) == list(expected_labels)
    assert len(ds) == len(expected_images)
    for row, pixels in zip(ds, expected_images):
        np.testing.assert_array_equal(np.asarray(row["image"]), pixels)


def assert_columns(ds, names):
    assert list(ds.features) == ["image", "label"]
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds.features["label"].names == names


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar10_reads_back_pixels_labels_and_names(tmp_path, split):
    written = write_cifar10(tmp_path / "cifar")
    ds = load(type="cifar10", root=str(tmp_path / "cifar"), split=split)
    assert_columns(ds, CIFAR10_NAMES)
    assert_images(ds, *written[split])
    assert len(ds) == (15 if split == "train" else 3)


def test_cifar10_root_may_be_the_batches_folder_itself(tmp_path):
    written = write_cifar10(tmp_path)
    ds = load(type="cifar10", root=str(tmp_path / "cifar-10-batches-py"), split="test")
    assert_images(ds, *written["test"])


@pytest.mark.parametrize("labels", ["fine", "coarse"])
def test_cifar100_fine_or_coarse_labels(tmp_path, labels):
    written = write_cifar100(tmp_path)
    ds = load(type="cifar100", root=str(tmp_path), split="train", labels=labels)
    images, fine, coarse = written["train"]
    assert_columns(ds, written["names"][0] if labels == "fine" else written["names"][1])
    assert_images(ds, images, fine if labels == "fine" else coarse)


def test_second_load_comes_from_the_cache_and_a_changed_file_rebuilds(tmp_path):
    written = write_cifar10(tmp_path)
    first = load(type="cifar10", root=str(tmp_path), split="test")

    # The batch overwritten with zeros but its size and modification time kept: the cache key is
    # unchanged, and reading the batch again would fail (zeros are no pickle).
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    stat = batch.stat()
    batch.write_bytes(bytes(stat.st_size))
    os.utime(batch, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = load(type="cifar10", root=str(tmp_path), split="test")
    assert second.cache_files == first.cache_files
    assert_images(second, *written["test"])

    rewritten = write_cifar10(tmp_path, seed=1)
    third = load(type="cifar10", root=str(tmp_path), split="test")
    assert third.cache_files != first.cache_files
    assert_images(third, *rewritten["test"])


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_idx_raw_and_gz(tmp_path, gz, split):
    written = write_mnist(tmp_path, gz=gz)
    ds = load(type="mnist", root=str(tmp_path), split=split)
    assert_columns(ds, [str(d) for d in range(10)])
    assert_images(ds, *written[split])


def test_fashion_mnist_names(tmp_path):
    written = write_mnist(tmp_path, gz=True)
    ds = load(type="fashion_mnist", root=str(tmp_path), split="test")
    assert_columns(ds, FASHION_MNIST_CLASSES)
    assert ds.features["label"].names[0] == "T-shirt/top"
    assert_images(ds, *written["test"])


@pytest.mark.parametrize("flat_val", [True, False], ids=["flat-val", "val-in-class-folders"])
@pytest.mark.parametrize("split", ["train", "val"])
def test_imagenet_lists_and_folders(tmp_path, flat_val, split):
    written = write_imagenet(tmp_path, flat_val=flat_val)
    ds = load(type="imagenet", root=str(tmp_path), split=split)
    assert_columns(ds, ["n01440764", "n01443537", "n01484850"])
    assert_images(ds, [p for _, _, p in written[split]], [label for _, label, _ in written[split]])
    assert ds.cast_column("image", datasets.Image(decode=False))[0]["image"]["path"].endswith(written[split][0][0])


def test_imagenet_without_meta_lists_scans_class_folders(tmp_path):
    written = write_imagenet(tmp_path, flat_val=False)
    for split in ("train", "val"):
        (tmp_path / "meta" / f"{split}.txt").unlink()
        ds = load(type="imagenet", root=str(tmp_path), split=split)
        assert_images(ds, [p for _, _, p in written[split]], [label for _, label, _ in written[split]])


def test_imagenet_classes_file_names_the_classes(tmp_path):
    write_imagenet(tmp_path)
    (tmp_path / "words.txt").write_text("tench\ngoldfish\nwhite shark\n")
    ds = load(type="imagenet", root=str(tmp_path), split="val", classes=str(tmp_path / "words.txt"))
    assert ds.features["label"].names == ["tench", "goldfish", "white shark"]


def test_annotation_list_with_classes_file_list_or_numbers(tmp_path):
    written = write_imagenet(tmp_path)
    base = dict(type="annotation_list", ann_file=str(tmp_path / "meta" / "val.txt"), data_prefix=str(tmp_path / "val"))
    expected = ([p for _, _, p in written["val"]], [label for _, label, _ in written["val"]])
    from_file = load(**base, classes=str(tmp_path / "meta" / "synsets.txt"))
    assert_columns(from_file, ["n01440764", "n01443537", "n01484850"])
    assert_images(from_file, *expected)
    assert_columns(load(**base, classes=["a", "b", "c"]), ["a", "b", "c"])
    assert_columns(load(**base), ["0", "1", "2"])


def test_annotation_list_unlabeled_test_set(tmp_path):
    written = write_imagenet(tmp_path)
    (tmp_path / "test.txt").write_text("".join(f"{path}\n" for path, _, _ in written["val"]))
    ds = load(
        type="annotation_list",
        ann_file=str(tmp_path / "test.txt"),
        data_prefix=str(tmp_path / "val"),
        classes=["a", "b", "c"],
    )
    assert_images(ds, [p for _, _, p in written["val"]], [-1] * len(written["val"]))


def test_disk_save_to_disk_dataset_and_dict_and_parquet(tmp_path):
    written = write_cifar10(tmp_path)
    test = load(type="cifar10", root=str(tmp_path), split="test")
    train = load(type="cifar10", root=str(tmp_path), split="train")
    test.save_to_disk(str(tmp_path / "single"))
    assert_images(load(type="disk", path=str(tmp_path / "single")), *written["test"])

    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "dict"))
    ds = load(type="disk", path=str(tmp_path / "dict"), split="train")
    assert_columns(ds, CIFAR10_NAMES)
    assert_images(ds, *written["train"])

    (tmp_path / "parquet").mkdir()
    train.to_parquet(str(tmp_path / "parquet" / "train-00000-of-00001.parquet"))
    test.to_parquet(str(tmp_path / "parquet" / "test-00000-of-00001.parquet"))
    ds = load(type="disk", path=str(tmp_path / "parquet"), split="test")
    assert_columns(ds, CIFAR10_NAMES)
    assert_images(ds, *written["test"])


def test_disk_renames_columns_and_names_classes(tmp_path):
    pixels = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    features = datasets.Features({"img": datasets.Image(), "target": datasets.Value("int64")})
    raw = datasets.Dataset.from_dict({"img": list(pixels), "target": [1, 0]}, features=features)
    raw.save_to_disk(str(tmp_path / "raw"))
    ds = load(type="disk", path=str(tmp_path / "raw"), image_column="img", label_column="target", classes=["no", "yes"])
    assert_columns(ds, ["no", "yes"])
    assert_images(ds, pixels, [1, 0])
