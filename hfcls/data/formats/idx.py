"""MNIST and Fashion-MNIST from their idx files, raw or gzipped, as distributed.

`root` holds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
`t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each possibly with `.gz`.
An idx file is a 4-byte magic number (0, 0, type 0x08 = ubyte, dimension count),
one big-endian uint32 per dimension, then the values.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from hfcls.data.formats.common import cached_dataset, check_label, png_sample
from hfcls.data.formats.fallback import hub_fallback
from hfcls.errors import HfclsError

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_CLASSES = [str(digit) for digit in range(10)]
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
UBYTE = 0x08


def mnist(root: str, split: str = "train"):
    """MNIST handwritten digits (28x28 grey), `split` train or test; classes '0'..'9'."""
    return _idx_dataset("mnist", root, split, MNIST_CLASSES, "ylecun/mnist", "http://yann.lecun.com/exdb/mnist/")


def fashion_mnist(root: str, split: str = "train"):
    """Zalando's Fashion-MNIST (28x28 grey), `split` train or test."""
    return _idx_dataset(
        "fashion_mnist",
        root,
        split,
        FASHION_MNIST_CLASSES,
        "zalando-datasets/fashion_mnist",
        "https://github.com/zalandoresearch/fashion-mnist",
    )


def _idx_dataset(kind: str, root: str, split: str, names: list, hub_name: str, url: str):
    if split not in FILES:
        raise HfclsError(f"{kind}: split must be one of {', '.join(FILES)}, got {split!r}")
    found = [_find(Path(root), name) for name in FILES[split]]
    if not any(found):
        return hub_fallback(
            kind,
            f"{Path(root) / FILES[split][0]}[.gz]",
            hub_name,
            split,
            "label",
            names,
            files_hint=f"{' and '.join(FILES[split])} (raw or .gz, from {url})",
        )
    for file, name in zip(found, FILES[split]):
        if file is None:
            raise HfclsError(f"{kind}: {Path(root) / name} (or .gz) is missing next to the other idx file")
    images, labels = found
    return cached_dataset(
        _idx_samples,
        {"images": str(images), "labels": str(labels), "names": tuple(names)},
        names,
        files=found,
        key={"kind": kind},
    )


def _find(root: Path, name: str) -> Path | None:
    for file in (root / name, root / f"{name}.gz"):
        if file.is_file():
            return file
    return None


def _idx_samples(images: str, labels: str, names: list):
    pixels, targets = read_idx(Path(images), dims=3), read_idx(Path(labels), dims=1)
    if len(pixels) != len(targets):
        raise HfclsError(
            f"{images} has {len(pixels)} images but {labels} has {len(targets)} labels; "
            "use the image and label files of the same split"
        )
    if not len(pixels):
        raise HfclsError(f"{images} holds no images; an empty split cannot be used")
    for index, (image, label) in enumerate(zip(pixels, targets)):
        check_label(int(label), names, f"{labels} label {index}", f"the {len(names)} classes of this dataset")
        yield png_sample(image, label)


def read_idx(file: Path, dims: int) -> np.ndarray:
    """The uint8 array an idx file holds, checking its magic number and length."""
    data = _read_bytes(file)
    expected = bytes([0, 0, UBYTE, dims])
    if data[:4] != expected:
        raise HfclsError(
            f"{file}: wrong magic number 0x{data[:4].hex()} (expected 0x{expected.hex()} for an "
            f"idx{dims}-ubyte file); is it the right file, fully downloaded?"
        )
    header = 4 + 4 * dims
    if len(data) < header:
        raise HfclsError(f"{file} is truncated: {len(data)} bytes, shorter than its {header}-byte header")
    shape = tuple(int(n) for n in np.frombuffer(data, dtype=">u4", count=dims, offset=4))
    body, promised = len(data) - header, math.prod(shape)  # Python ints: np.prod wraps around past 2**63
    if body != promised:
        state = "truncated" if body < promised else "longer than its header says"
        raise HfclsError(
            f"{file} is {state}: its header promises {' x '.join(map(str, shape))} = "
            f"{promised:,} bytes, the file holds {body:,}; download it again"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _read_bytes(file: Path) -> bytes:
    if file.suffix != ".gz":
        return file.read_bytes()
    try:
        with gzip.open(file, "rb") as handle:
            return handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise HfclsError(f"{file} is not a complete gzip file ({error}); download it again") from None
