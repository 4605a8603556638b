"""hfcls-prepare's library side: scikit-learn's digits as a stratified image folder."""

import numpy as np
import pytest
from PIL import Image

from hfcls.data.prepare import prepare_digits
from hfcls.errors import HfclsError


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
    with pytest.raises(HfclsError, match="already has files"):
        prepare_digits(digits_dir)
