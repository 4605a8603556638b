"""Data sets hfcls writes itself (hfcls-prepare), offline: scikit-learn's bundled digits as an image folder.

1,797 real 8x8 handwritten digits (no download), written as PNG files into
DIR/train/<class>/ and DIR/val/<class>/ with a seeded, stratified 80/20 split.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from hfcls.errors import HfclsError


def prepare_digits(root, val_fraction=0.2, seed=0) -> dict:
    """Write the PNG folders; return the image count per split."""
    if not 0 < val_fraction < 1:
        raise HfclsError(f"--val-fraction must be between 0 and 1 (both excluded), got {val_fraction}")
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
        if (root / split).exists() and any((root / split).iterdir()):
            raise HfclsError(f"{root / split} already has files; remove it or choose another folder")
        for i in sorted(chosen):
            folder = root / split / str(digits.target[i])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i], mode="L").save(folder / f"{i:04d}.png")
        counts[split] = len(chosen)
    return counts


DATASETS = {"digits": prepare_digits}
