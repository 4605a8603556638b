"""Foundation data pieces: hub source columns, digits preparation, source errors."""

import io

import datasets
import numpy as np
import pytest
from PIL import Image

from hfcls.data.prepare import prepare_digits
from hfcls.data.sources import load_source
from hfcls.errors import HfclsError


def png_bytes(value):
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def local_hub_dataset(tmp_path):
    """A dataset folder with its own column names, loaded the way a Hub id is."""
    ds = datasets.Dataset.from_dict(
        {"img": [{"bytes": png_bytes(v), "path": None} for v in (10, 20, 30)],
         "fine": ["b", "a", "b"], "extra": [1, 2, 3]},
        features=datasets.Features({"img": datasets.Image(), "fine": datasets.Value("string"),
                                    "extra": datasets.Value("int64")}),
    )
    folder = tmp_path / "hubdata"
    folder.mkdir()
    ds.to_parquet(str(folder / "train.parquet"))
    return folder


def test_hub_source_renames_columns_and_encodes_string_labels(local_hub_dataset):
    ds = load_source({"type": "hub", "name": str(local_hub_dataset), "image_column": "img",
                      "label_column": "fine"}, "data.train")
    assert ds.column_names == ["image", "label"]
    assert ds.features["label"].names == ["a", "b"]
    assert [ds.features["label"].int2str(i) for i in ds["label"]] == ["b", "a", "b"]
    assert np.asarray(ds[2]["image"])[0, 0, 0] == 30


def test_hub_source_with_a_wrong_column_suggests_one(local_hub_dataset):
    with pytest.raises(HfclsError, match='no column \'imgs\' \\(did you mean "img"\\?\\)'):
        load_source({"type": "hub", "name": str(local_hub_dataset), "image_column": "imgs"}, "data.train")


@pytest.mark.parametrize("spec, message", [
    ({"path": "x"}, "needs a type"),
    ({"type": "imagefoldr", "path": "x"}, 'unknown source \'imagefoldr\' (did you mean "imagefolder"?)'),
    ({"type": "imagefolder", "pth": "x"}, 'unknown key pth (did you mean "path"?)'),
    ({"type": "imagefolder"}, "a imagefolder source needs path"),
])
def test_source_spec_errors(spec, message):
    with pytest.raises(HfclsError) as error:
        load_source(spec, "data.train")
    assert message in str(error.value) and "data.train" in str(error.value)


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
