"""Data sets hfcls writes itself (hfcls-prepare), offline.

`prepare_digits`: scikit-learn's bundled digits as an image folder: 1,797 real
8x8 handwritten digits (no download), written as PNG files into
DIR/train/<class>/ and DIR/val/<class>/ with a seeded, stratified 80/20 split.

`shrink_splits`: a copy of a recipe's splits with every image's shorter side at
most N pixels (FFCV's idea: decoding a large JPEG costs more than the model's
step needs), as parquet shards that the `disk` source reads. Each image larger
than that is resized (bilinear, antialiased) and stored as an RGB JPEG; smaller
ones keep their files' bytes.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import datasets
import numpy as np
from PIL import Image
from torchvision.io import encode_jpeg
from torchvision.transforms.v2 import functional as F
from tqdm.auto import tqdm

from hfcls.data.decode import DECODE_ERRORS, decode, image_bytes
from hfcls.errors import HfclsError


def prepare_digits(root, val_fraction=0.2, seed=0) -> dict:
    """Write the PNG folders; return the image count per split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # 0..16 intensities -> 0..255 grey levels
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    indices = np.arange(len(images))
    train_idx, val_idx = train_test_split(
        indices, test_size=val_fraction, random_state=seed, stratify=digits.target
    )
    root = Path(root)
    counts = {}
    for split, chosen in (("train", train_idx), ("val", val_idx)):
        refuse_files_in(root / split)
        for i in sorted(chosen):
            folder = root / split / str(digits.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], mode="L").save(folder / f"{i:04d}.png")
        counts[split] = len(chosen)
    return counts


def refuse_files_in(folder: Path) -> None:
    if folder.exists() and any(folder.iterdir()):
        raise HfclsError(f"{folder} already has files; remove it or choose another folder")


# ----------------------------------------------------------------------------- shrink


def shrink_splits(dsets: dict, root, short_side: int, quality: int = 90, rows_per_shard: int = 1000,
                  workers: int = 1) -> dict:
    """Write each split of `dsets` (from build_datasets) as root/<split>/<split>-NNNNN-of-NNNNN.parquet,
    every image's shorter side at most `short_side`; {split: (images, shards, MiB written)}."""
    root = Path(root)
    for split in dsets:
        refuse_files_in(root / split)
    written = {}
    for split, ds in dsets.items():
        ds = ds.cast_column("image", datasets.Image(decode=False))
        count = max(1, math.ceil(len(ds) / rows_per_shard))
        (root / split).mkdir(parents=True, exist_ok=True)
        paths = [root / split / f"{split}-{i:05d}-of-{count:05d}.parquet" for i in range(count)]
        jobs = [(ds, i, count, path, short_side, quality) for i, path in enumerate(paths)]
        images = sum(tqdm(_written_shards(jobs, workers), total=count, desc=f"shrink {split}", unit="shard"))
        written[split] = (images, count, sum(path.stat().st_size for path in paths) / 2**20)
    return written


def _written_shards(jobs: list, workers: int):
    """The image count of each shard as it is written, by `workers` processes."""
    if workers == 1:
        yield from (_write_shard(*job) for job in jobs)
        return
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(_write_shard, *zip(*jobs))


def _write_shard(ds, index: int, count: int, path: Path, short_side: int, quality: int) -> int:
    rows = ds.shard(count, index, contiguous=True)
    images = [shrink_image(image, short_side, quality) for image in rows["image"]]
    features = rows.features.copy()
    features["image"] = datasets.Image()
    # Cast, not encoded: encoding a row whose path is a file keeps the path and drops the new bytes.
    shard = datasets.Dataset.from_dict({**rows.to_dict(), "image": images}).cast(features)
    shard.to_parquet(str(path))
    return len(shard)


def shrink_image(image: dict, short_side: int, quality: int) -> dict:
    """A {'path', 'bytes'} row with the image's shorter side at most `short_side`."""
    name = image.get("path") or "<in-memory image>"
    try:
        data = image_bytes(image)
        pixels = decode({"bytes": data}, to_rgb=True)
    except DECODE_ERRORS as error:
        raise HfclsError(f"cannot decode image {name} ({error}); remove or replace it (hfcls-verify lists "
                         "every such file)") from None
    if min(pixels.shape[-2:]) <= short_side:
        return {"bytes": data, "path": image.get("path")}
    small = F.resize(pixels, [short_side], antialias=True)  # the shorter side to short_side
    return {"bytes": encode_jpeg(small, quality=quality).numpy().tobytes(), "path": image.get("path")}
