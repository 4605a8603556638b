"""Data sets hfcls writes itself (hfcls-prepare), offline, from scikit-learn's bundled digits.

1,797 real 8x8 handwritten digits (no download), split 80/20 into train and val,
seeded and stratified, then written as:

- digits: PNG class folders DIR/train/<class>/ and DIR/val/<class>/;
- imbalanced_digits: the same, with only 2 % of class 0's training images kept
  (at least one): a rare class, to show what class weights and balanced sampling do;
- multilabel_digits: 8x24 canvases of 2 or 3 different digits side by side (an empty
  slot where there are 2), each labelled with the set of digits it shows, as images and
  a metadata.jsonl in DIR/train/ and DIR/val/ (datasets' imagefolder convention).
  Each split's canvases are pasted from its own digits, as many canvases as digits.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from hfcls.errors import HfclsError

SLOTS = 3  # digits a multi-label canvas has room for


def split_digits(val_fraction: float, seed: int) -> dict:
    """{split: (8x8 uint8 images, class ids)}, a seeded, stratified split of the bundled digits."""
    if not 0 < val_fraction < 1:
        raise HfclsError(f"--val-fraction must be between 0 and 1 (both excluded), got {val_fraction}")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # 0..16 intensities -> 0..255 grey levels
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    train_idx, val_idx = train_test_split(np.arange(len(images)), test_size=val_fraction, random_state=seed,
                                          stratify=digits.target)
    return {split: (images[np.sort(chosen)], digits.target[np.sort(chosen)], np.sort(chosen))
            for split, chosen in (("train", train_idx), ("val", val_idx))}


def empty_folder(folder: Path) -> Path:
    if folder.exists() and any(folder.iterdir()):
        raise HfclsError(f"{folder} already has files; remove it or choose another folder")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def prepare_digits(root, val_fraction=0.2, seed=0, keep: dict | None = None) -> dict:
    """Write the PNG class folders; `keep` {class: fraction} thins the training images of those
    classes. Return the image count per split."""
    root, counts = Path(root), {}
    for split, (images, targets, ids) in split_digits(val_fraction, seed).items():
        folder = empty_folder(root / split)
        chosen = np.arange(len(images))
        if split == "train" and keep:
            chosen = thinned(targets, keep, seed)
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


def prepare_imbalanced_digits(root, val_fraction=0.2, seed=0) -> dict:
    return prepare_digits(root, val_fraction, seed, keep={0: 0.02})


def prepare_multilabel_digits(root, val_fraction=0.2, seed=0) -> dict:
    """Write each split's canvases and its metadata.jsonl; return the canvas count per split."""
    root, counts = Path(root), {}
    rng = np.random.default_rng(seed)
    for split, (images, targets, _) in split_digits(val_fraction, seed).items():
        folder = empty_folder(root / split)
        (folder / "images").mkdir()
        by_class = [np.flatnonzero(targets == c) for c in range(10)]
        rows = []
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
        canvas[:, 8 * slot:8 * slot + 8] = images[rng.choice(by_class[digit])]
    return canvas, [int(d) for d in shown]


DATASETS = {"digits": prepare_digits, "imbalanced_digits": prepare_imbalanced_digits,
            "multilabel_digits": prepare_multilabel_digits}
