"""Data sets hfcls writes itself (hfcls-prepare), offline.

From scikit-learn's bundled digits: 1,797 real 8x8 handwritten digits (no download),
split 80/20 into train and val, seeded and stratified, then written as:

- digits: PNG class folders DIR/train/<class>/ and DIR/val/<class>/;
- imbalanced_digits: the same, with only 2 % of class 0's training images kept
  (at least one): a rare class, to show what class weights and balanced sampling do;
- multilabel_digits: 8x24 canvases of 2 or 3 different digits side by side (an empty
  slot where there are 2), each labelled with the set of digits it shows, as images and
  a metadata.jsonl in DIR/train/ and DIR/val/ (datasets' imagefolder convention).
  Each split's canvases are pasted from its own digits, as many canvases as digits.

`shrink_splits`: a copy of a recipe's splits with every image's shorter side at
most N pixels (FFCV's idea: decoding a large JPEG costs more than the model's
step needs), as parquet shards that the `disk` source reads. Each image larger
than that is resized (bilinear, antialiased) and stored as an RGB JPEG; smaller
ones keep their files' bytes.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import datasets
import numpy as np
from PIL import Image
from torchvision.io import encode_jpeg
from torchvision.transforms.v2 import functional as F
from tqdm.auto import tqdm

from hfcls.data.decode import DECODE_ERRORS, decode, image_bytes
from hfcls.errors import HfclsError
from hfcls.files import check_output, is_occupied, publish_folder, temporary_folder

SLOTS = 3  # digits a multi-label canvas has room for


def split_digits(val_fraction: float, seed: int) -> dict:
    """{split: (8x8 uint8 images, class ids)}, a seeded, stratified split of the bundled digits."""
    if not 0 < val_fraction < 1:
        raise HfclsError(
            f"val_fraction must be between 0 and 1 (both excluded), got {val_fraction}", param="val_fraction"
        )
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # 0..16 intensities -> 0..255 grey levels
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    train_idx, val_idx = train_test_split(
        np.arange(len(images)), test_size=val_fraction, random_state=seed, stratify=digits.target
    )
    return {
        split: (images[np.sort(chosen)], digits.target[np.sort(chosen)], np.sort(chosen))
        for split, chosen in (("train", train_idx), ("val", val_idx))
    }


def check_split_folders(root: Path, splits, overwrite: bool) -> None:
    """Each split's folder new or empty (or `overwrite`), all of them before anything is written."""
    for split in splits:
        check_output(root / split, overwrite, kind="folder", what="split folder")


@contextmanager
def split_folder(folder: Path):
    """A new folder the block fills, renamed to `folder` at its end; a failure leaves `folder` as it was.
    A folder that holds files (--overwrite) is swapped out whole, durably (hfcls.files.publish_folder);
    a new one is only renamed into place: flushing thousands of small images one by one would cost more
    than writing them, and nothing of the user's is at stake there."""
    tmp = temporary_folder(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if is_occupied(folder):
        publish_folder(tmp, folder)
    else:
        os.replace(tmp, folder)  # over an empty folder, or none


def prepare_digits(root, val_fraction=0.2, seed=0, keep: dict | None = None, overwrite: bool = False) -> dict:
    """Write the PNG class folders; `keep` {class: fraction} thins the training images of those
    classes. Return the image count per split. A split folder holding files is refused unless
    `overwrite`, which replaces it whole."""
    root, counts = Path(root), {}
    splits = split_digits(val_fraction, seed)
    check_split_folders(root, splits, overwrite)
    for split, (images, targets, ids) in splits.items():
        chosen = thinned(targets, keep, seed) if split == "train" and keep else np.arange(len(images))
        with split_folder(root / split) as folder:
            for i in chosen:
                (folder / str(targets[i])).mkdir(exist_ok=True)
                Image.fromarray(images[i], mode="L").save(folder / str(targets[i]) / f"{ids[i]:04d}.png")
        counts[split] = len(chosen)
    return counts


def thinned(targets: np.ndarray, keep: dict, seed: int) -> np.ndarray:
    """The indices left when class c keeps a fraction keep[c] (at least one image), seeded."""
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(targets):
        members = np.flatnonzero(targets == c)
        if c in keep:
            members = np.sort(rng.choice(members, max(1, round(keep[c] * len(members))), replace=False))
        chosen.append(members)
    return np.sort(np.concatenate(chosen))


def prepare_imbalanced_digits(root, val_fraction=0.2, seed=0, overwrite: bool = False) -> dict:
    return prepare_digits(root, val_fraction, seed, keep={0: 0.02}, overwrite=overwrite)


def prepare_multilabel_digits(root, val_fraction=0.2, seed=0, overwrite: bool = False) -> dict:
    """Write each split's canvases and its metadata.jsonl; return the canvas count per split."""
    root, counts = Path(root), {}
    rng = np.random.default_rng(seed)
    splits = split_digits(val_fraction, seed)
    check_split_folders(root, splits, overwrite)
    for split, (images, targets, _) in splits.items():
        by_class = [np.flatnonzero(targets == c) for c in range(10)]
        rows = []
        with split_folder(root / split) as folder:
            (folder / "images").mkdir()
            for n in range(len(images)):
                canvas, shown = digit_canvas(images, by_class, rng)
                name = f"images/{n:05d}.png"
                Image.fromarray(canvas, mode="L").save(folder / name)
                rows.append(json.dumps({"file_name": name, "labels": [str(c) for c in sorted(shown)]}))
            (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")
        counts[split] = len(rows)
    return counts


def digit_canvas(images: np.ndarray, by_class: list, rng) -> tuple:
    """(an 8 x 24 canvas of 2 or 3 different random digits in random slots, the digits shown)."""
    shown = rng.choice(10, size=rng.integers(2, SLOTS + 1), replace=False)
    slots = rng.choice(SLOTS, size=len(shown), replace=False)
    canvas = np.zeros((8, 8 * SLOTS), dtype=np.uint8)
    for digit, slot in zip(shown, slots):
        canvas[:, 8 * slot : 8 * slot + 8] = images[rng.choice(by_class[digit])]
    return canvas, [int(d) for d in shown]


DATASETS = {
    "digits": prepare_digits,
    "imbalanced_digits": prepare_imbalanced_digits,
    "multilabel_digits": prepare_multilabel_digits,
}


# ----------------------------------------------------------------------------- shrink


def shrink_splits(
    dsets: dict,
    root,
    short_side: int,
    quality: int = 90,
    rows_per_shard: int = 1000,
    workers: int = 1,
    overwrite: bool = False,
) -> dict:
    """Write each split of `dsets` (from build_datasets) as root/<split>/<split>-NNNNN-of-NNNNN.parquet,
    every image's shorter side at most `short_side`; {split: (images, shards, MiB written)}. A split
    folder holding files is refused unless `overwrite`, which replaces it whole."""
    root = Path(root)
    check_split_folders(root, dsets, overwrite)
    written = {}
    for split, ds in dsets.items():
        ds = ds.cast_column("image", datasets.Image(decode=False))
        count = max(1, math.ceil(len(ds) / rows_per_shard))
        with split_folder(root / split) as folder:
            paths = [folder / f"{split}-{i:05d}-of-{count:05d}.parquet" for i in range(count)]
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
        raise HfclsError(
            f"cannot decode image {name} ({error}); remove or replace it (hfcls-verify lists every such file)"
        ) from None
    if min(pixels.shape[-2:]) <= short_side:
        return {"bytes": data, "path": image.get("path")}
    small = F.resize(pixels, [short_side], antialias=True)  # the shorter side to short_side
    return {"bytes": encode_jpeg(small, quality=quality).numpy().tobytes(), "path": image.get("path")}
