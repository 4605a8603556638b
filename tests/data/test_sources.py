"""Every source spec -> datasets.Dataset(image, label); bad input is one clear HfclsError that names the file
(and line) concerned; the Hub copy when a standard data set is not on disk."""

import gzip
import io

import datasets
import numpy as np
import pytest
from PIL import Image

from hfcls.data.formats.cifar import CIFAR100_FINE
from hfcls.data.sources import load_source
from hfcls.errors import HfclsError

from layouts import idx_bytes, isolated_cache, write_cifar10, write_imagenet, write_mnist, write_pickle  # noqa: F401


def load(**spec):
    return load_source(spec, where="data.train")


def raises(match, **spec):
    with pytest.raises(HfclsError, match=match) as info:
        load(**spec)
    assert "\n" not in str(info.value)
    return str(info.value)


# ----------------------------------------------------------------------------- source specs


def png_bytes(value):
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def local_hub_dataset(tmp_path):
    """A dataset folder with its own column names, loaded the way a Hub id is."""
    ds = datasets.Dataset.from_dict(
        {
            "img": [{"bytes": png_bytes(v), "path": None} for v in (10, 20, 30)],
            "fine": ["b", "a", "b"],
            "extra": [1, 2, 3],
        },
        features=datasets.Features(
            {"img": datasets.Image(), "fine": datasets.Value("string"), "extra": datasets.Value("int64")}
        ),
    )
    folder = tmp_path / "hubdata"
    folder.mkdir()
    ds.to_parquet(str(folder / "train.parquet"))
    return folder


def test_hub_source_renames_columns_and_encodes_string_labels(local_hub_dataset):
    ds = load_source(
        {"type": "hub", "name": str(local_hub_dataset), "image_column": "img", "label_column": "fine"}, "data.train"
    )
    assert ds.column_names == ["image", "label"]
    assert ds.features["label"].names == ["a", "b"]
    assert [ds.features["label"].int2str(i) for i in ds["label"]] == ["b", "a", "b"]
    assert np.asarray(ds[2]["image"])[0, 0, 0] == 30


def test_hub_source_with_a_wrong_column_suggests_one(local_hub_dataset):
    with pytest.raises(HfclsError, match="no column 'imgs' \\(did you mean \"img\"\\?\\)"):
        load_source({"type": "hub", "name": str(local_hub_dataset), "image_column": "imgs"}, "data.train")


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"path": "x"}, "needs a type"),
        ({"type": "imagefoldr", "path": "x"}, "unknown source 'imagefoldr' (did you mean \"imagefolder\"?)"),
        ({"type": "imagefolder", "pth": "x"}, 'unknown key pth (did you mean "path"?)'),
        ({"type": "imagefolder"}, "a imagefolder source needs path"),
    ],
)
def test_source_spec_errors(spec, message):
    with pytest.raises(HfclsError) as error:
        load_source(spec, "data.train")
    assert message in str(error.value) and "data.train" in str(error.value)


# ----------------------------------------------------------------------------- annotation lists


@pytest.fixture
def listed(tmp_path):
    """An image folder with three PNGs and a helper that writes an annotation file for it."""
    write_imagenet(tmp_path, per_class=1)

    def annotations(text):
        (tmp_path / "ann.txt").write_text(text)
        return dict(type="annotation_list", ann_file=str(tmp_path / "ann.txt"), data_prefix=str(tmp_path / "val"))

    return annotations


def test_annotation_line_with_too_many_fields(listed):
    spec = listed("ILSVRC2012_val_00000000.png 0\nILSVRC2012_val_00000001.png 1 extra\n")
    raises(r"ann\.txt line 2: 3 fields", **spec)


def test_annotation_label_that_is_not_a_number(listed):
    raises(r"ann\.txt line 1: label 'cat' is not a whole number", **listed("ILSVRC2012_val_00000000.png cat\n"))


def test_annotation_lines_mixing_labeled_and_unlabeled(listed):
    spec = listed("ILSVRC2012_val_00000000.png 0\n\nILSVRC2012_val_00000001.png\n")
    raises(r"ann\.txt line 3: no label where line 1 has one", **spec)


def test_listed_file_that_does_not_exist(listed):
    spec = listed("ILSVRC2012_val_00000000.png 0\nmissing.png 1\ngone.png 1\n")
    message = raises(r"ann\.txt line 2: image .*missing\.png does not exist", **spec)
    assert "and 1 more" in message


def test_label_outside_the_classes(listed):
    spec = listed("ILSVRC2012_val_00000000.png 0\nILSVRC2012_val_00000001.png 3\n")
    raises(
        r"ann\.txt line 2: label 3 is outside \[0, 3\) for the 3 classes of classes \['a', 'b', 'c'\]",
        **spec,
        classes=["a", "b", "c"],
    )


def test_class_file_count_disagrees_with_labels(tmp_path):
    write_imagenet(tmp_path)
    (tmp_path / "two.txt").write_text("n01440764\nn01443537\n")
    raises(
        r"val\.txt line 7: label 2 is outside \[0, 2\) for the 2 classes of classes .*two\.txt",
        type="imagenet",
        root=str(tmp_path),
        split="val",
        classes=str(tmp_path / "two.txt"),
    )


def test_empty_annotation_file(listed):
    raises(r"ann\.txt lists no images", **listed("\n\n"))


def test_missing_classes_file_and_annotation_file(tmp_path, listed):
    raises(
        r"classes file .*nope\.txt does not exist",
        **listed("ILSVRC2012_val_00000000.png 0\n"),
        classes=str(tmp_path / "nope.txt"),
    )
    raises(
        r"annotation file .*absent\.txt does not exist", type="annotation_list", ann_file=str(tmp_path / "absent.txt")
    )


# ----------------------------------------------------------------------------- imagenet folders


def test_imagenet_flat_val_without_list(tmp_path):
    write_imagenet(tmp_path)
    (tmp_path / "meta" / "val.txt").unlink()
    raises(
        r"val has no class folders; for a flat folder give its list as .*/meta/val\.txt or set ann_file",
        type="imagenet",
        root=str(tmp_path),
        split="val",
    )


def test_imagenet_unknown_class_folder_and_empty_split(tmp_path):
    write_imagenet(tmp_path, flat_val=False)
    (tmp_path / "meta" / "val.txt").unlink()
    raises(
        r"class folder n01484850 is not among the 2 classes",
        type="imagenet",
        root=str(tmp_path),
        split="val",
        classes=["n01440764", "n01443537"],
    )
    for image in (tmp_path / "val").rglob("*.png"):
        image.unlink()
    raises(r"val: class folder n01440764 holds no images", type="imagenet", root=str(tmp_path), split="val")


def test_imagenet_missing_root(tmp_path):
    raises(r"imagenet root .*nowhere does not exist", type="imagenet", root=str(tmp_path / "nowhere"))


# ----------------------------------------------------------------------------- idx files


def test_idx_wrong_magic_number(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros((6, 28, 28), np.uint8)))  # an image file where labels belong
    raises(
        r"t10k-labels-idx1-ubyte: wrong magic number 0x00000803 \(expected 0x00000801",
        type="mnist",
        root=str(tmp_path),
        split="test",
    )


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_idx_truncated_body(tmp_path, gz):
    write_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    data = path.read_bytes()[:-100]
    if gz:
        path.unlink()
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    raises(
        r"t10k-images-idx3-ubyte(\.gz)? is truncated: its header promises 6 x 28 x 28 = 4,704 bytes, "
        r"the file holds 4,604",
        type="mnist",
        root=str(tmp_path),
        split="test",
    )


def test_gz_cut_short(tmp_path):
    write_mnist(tmp_path, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:50])
    raises(r"t10k-images-idx3-ubyte\.gz is not a complete gzip file", type="mnist", root=str(tmp_path), split="test")


def test_idx_images_and_labels_of_different_lengths(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5, np.uint8)))
    raises(
        r"t10k-images-idx3-ubyte has 6 images but .*t10k-labels-idx1-ubyte has 5 labels",
        type="mnist",
        root=str(tmp_path),
        split="test",
    )


def test_idx_empty_split_and_label_out_of_range(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(0, np.uint8)))
    raises(r"t10k-images-idx3-ubyte holds no images", type="mnist", root=str(tmp_path), split="test")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([0] * 11 + [10], np.uint8)))
    raises(r"train-labels-idx1-ubyte label 11: label 10 is outside \[0, 10\)", type="mnist", root=str(tmp_path))


def test_idx_one_file_of_a_pair_missing(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    raises(r"train-labels-idx1-ubyte \(or \.gz\) is missing", type="mnist", root=str(tmp_path))


# ----------------------------------------------------------------------------- cifar pickles


@pytest.mark.parametrize(
    "content, match",
    [
        (b"not a pickle at all", r"test_batch is not a CIFAR batch \(cannot unpickle it"),
        ([1, 2, 3], r"test_batch is not a CIFAR batch: it holds a list, not a dict"),
        ({"images": []}, r"test_batch is not a CIFAR batch: it has keys \['images'\], not data and labels"),
        ({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, r"data is uint8 \(2, 100\), not N x 3072 uint8"),
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, r"test_batch: 2 images but 1 labels"),
        ({"data": np.zeros((0, 3072), np.uint8), "labels": []}, r"test_batch holds no images"),
        (
            {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]},
            r"test_batch image 1: label 10 is outside \[0, 10\) for the 10 classes of the CIFAR meta file",
        ),
    ],
    ids=["garbage", "list", "keys", "shape", "lengths", "empty", "label"],
)
def test_not_a_cifar_batch(tmp_path, content, match):
    write_cifar10(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    if isinstance(content, bytes):
        batch.write_bytes(content)
    else:
        write_pickle(batch, content)
    raises(match, type="cifar10", root=str(tmp_path), split="test")


def test_cifar_missing_batch_and_bad_options(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    raises(r"batch file .*data_batch_3 is missing", type="cifar10", root=str(tmp_path))
    raises(r"cifar10: split must be one of train, test, got 'val'", type="cifar10", root=str(tmp_path), split="val")
    raises(
        r"labels must be fine or coarse, got 'fin' \(did you mean \"fine\"\?\)",
        type="cifar100",
        root=str(tmp_path),
        labels="fin",
    )


def test_unknown_recipe_key_names_the_source_keys(tmp_path):
    raises(
        r"data\.train: unknown key data_prefix for a cifar10 source; its keys: root, split",
        type="cifar10",
        root=str(tmp_path),
        data_prefix="x",
    )


# ----------------------------------------------------------------------------- disk


def test_disk_errors(tmp_path):
    raises(r"disk dataset .*absent does not exist", type="disk", path=str(tmp_path / "absent"))
    (tmp_path / "empty").mkdir()
    raises(
        r"holds neither a save_to_disk dataset .* nor \.parquet or webdataset \.tar files",
        type="disk",
        path=str(tmp_path / "empty"),
    )
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a"])})
    one = datasets.Dataset.from_dict({"image": [np.zeros((2, 2, 3), np.uint8)], "label": [0]}, features=features)
    datasets.DatasetDict({"train": one, "test": one}).save_to_disk(str(tmp_path / "dict"))
    raises(r"holds splits train, test; choose one with split:", type="disk", path=str(tmp_path / "dict"))
    raises(r"has no split 'tset' \(did you mean \"test\"\?\)", type="disk", path=str(tmp_path / "dict"), split="tset")


# ----------------------------------------------------------------------------- Hub fallback


@pytest.mark.parametrize(
    "kind, hub_name, files",
    [
        ("cifar10", "uoft-cs/cifar10", "cifar-10-python.tar.gz"),
        ("cifar100", "uoft-cs/cifar100", "cifar-100-python.tar.gz"),
        ("mnist", "ylecun/mnist", "train-images-idx3-ubyte and train-labels-idx1-ubyte"),
        ("fashion_mnist", "zalando-datasets/fashion_mnist", "train-images-idx3-ubyte and train-labels-idx1-ubyte"),
    ],
)
def test_missing_root_offline_is_one_line_saying_where_files_go(tmp_path, kind, hub_name, files):
    message = raises(
        rf"{kind}: .*{tmp_path}/nothing.* not found and {hub_name} cannot be loaded from the Hub",
        type=kind,
        root=str(tmp_path / "nothing"),
    )
    assert files in message
    assert "go online (unset HF_HUB_OFFLINE and HF_DATASETS_OFFLINE)" in message


def fake_hub(image_column, label_column, names, calls):
    """What datasets.load_dataset returns for the Hub copy, recorded instead of downloaded."""

    def load_dataset(name, split):
        calls.append((name, split))
        features = datasets.Features(
            {
                image_column: datasets.Image(),
                label_column: datasets.ClassLabel(names=names),
                "extra": datasets.Value("int64"),
            }
        )
        return datasets.Dataset.from_dict(
            {image_column: [np.full((2, 2, 3), 7, np.uint8)] * 2, label_column: [len(names) - 1, 0], "extra": [0, 0]},
            features=features,
        )

    return load_dataset


def test_missing_cifar_root_loads_the_hub_copy_with_the_archive_class_names(tmp_path, monkeypatch):
    calls = []
    hub_names = ["cra" if name == "crab" else name for name in CIFAR100_FINE]  # the Hub copy's typo
    monkeypatch.setattr(datasets, "load_dataset", fake_hub("img", "fine_label", hub_names, calls))
    ds = load(type="cifar100", root=str(tmp_path), split="test")
    assert calls == [("uoft-cs/cifar100", "test")]
    assert list(ds.features) == ["image", "label"] and ds.features["label"].names == CIFAR100_FINE
    assert ds.features["label"].names[26] == "crab"
    assert list(ds["label"]) == [99, 0]


def test_missing_fashion_mnist_root_keeps_hfcls_class_names(tmp_path, monkeypatch):
    calls = []
    hub_names = ["T - shirt / top"] + [f"hub{i}" for i in range(1, 10)]
    monkeypatch.setattr(datasets, "load_dataset", fake_hub("image", "label", hub_names, calls))
    ds = load(type="fashion_mnist", root=str(tmp_path), split="train")
    assert calls == [("zalando-datasets/fashion_mnist", "train")]
    assert ds.features["label"].names[0] == "T-shirt/top" and ds.features["label"].names[9] == "Ankle boot"
    assert list(ds["label"]) == [9, 0]


# ----------------------------------------------------------------------------- image folders


def test_image_folder_classes_named_like_splits_are_classes(tmp_path, isolated_cache):  # noqa: F811
    """datasets reads a data_dir's train/ and test/ folders as splits; hfcls names the class folders'
    files, so folders of those names stay classes, every image read once, in sorted path order."""
    folder = tmp_path / "photos [2026]*"  # a folder name that is not a glob pattern
    for name, value in (("test", 10), ("train", 200), ("train-extra", 90)):
        (folder / name).mkdir(parents=True)
        for index in range(2):
            (folder / name / f"{index}.png").write_bytes(png_bytes(value))
    ds = load(type="imagefolder", path=str(folder))
    assert ds.features["label"].names == ["test", "train", "train-extra"]
    paths = [row["path"] for row in ds.cast_column("image", datasets.Image(decode=False))["image"]]
    assert paths == sorted(str(folder / n / f"{i}.png") for n in ("test", "train", "train-extra") for i in range(2))
    assert [ds.features["label"].int2str(label) for label in ds["label"]] == [p.split("/")[-2] for p in paths]
