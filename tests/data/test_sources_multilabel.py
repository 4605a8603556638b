"""Multi-label sources -> datasets.Dataset(image, label: List(ClassLabel)): annotation lists with several
labels a line, image folders with a metadata file, saved datasets with a sequence feature, PASCAL VOC;
the data door carries them as multi-hot vectors. Bad input names the file and line."""

import json
import re

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from hfcls.data.build import build_datasets, build_eval_loader, build_train_loader
from hfcls.data.formats.voc import VOC_CLASSES
from hfcls.data.sources import load_source
from hfcls.engine.setup import accelerator_session
from hfcls.errors import HfclsError
from hfcls.recipe import load_recipe

from conftest import make_multilabel_folder, tiny_recipe_dict, write_recipe
from layouts import write_voc


def load(**spec):
    return load_source(spec, where="data.train")


def refused(match, **spec) -> str:
    with pytest.raises(HfclsError, match=re.escape(match)) as info:
        load(**spec)
    assert "\n" not in str(info.value)
    return str(info.value)


def images(folder, count):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((4, 4, 3), i * 20, dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def assert_multi_label(ds, names):
    assert isinstance(ds.features["label"], datasets.List)
    assert ds.features["label"].feature.names == names


# ----------------------------------------------------------------------------- annotation lists


def test_annotation_list_with_several_labels_a_line(tmp_path):
    images(tmp_path / "img", 3)
    (tmp_path / "ann.txt").write_text("img/0.png 0,2\nimg/1.png 1\n\nimg/2.png 2,0,1\n")
    ds = load(
        type="annotation_list", ann_file=str(tmp_path / "ann.txt"), data_prefix=str(tmp_path), classes=["a", "b", "c"]
    )
    assert_multi_label(ds, ["a", "b", "c"])
    assert ds["label"] == [[0, 2], [1], [2, 0, 1]]
    (tmp_path / "semi.txt").write_text("img/0.png 0;2\nimg/1.png 1\n")
    ds = load(type="annotation_list", ann_file=str(tmp_path / "semi.txt"), data_prefix=str(tmp_path), labels_sep=";")
    assert ds["label"] == [[0, 2], [1]] and ds.features["label"].feature.names == ["0", "1", "2"]


def test_annotation_list_errors_name_the_line(tmp_path):
    images(tmp_path / "img", 3)
    ann = tmp_path / "ann.txt"
    ann.write_text("img/0.png 0,2\nimg/1.png 1,5\n")
    refused(
        f"{ann} line 2: label 5 is outside [0, 3)",
        type="annotation_list",
        ann_file=str(ann),
        data_prefix=str(tmp_path),
        classes=["a", "b", "c"],
    )
    ann.write_text("img/0.png 0,2\nimg/1.png\nimg/2.png 1\n")
    refused(
        f"{ann} line 2: no labels; list the image's classes, or set allow_empty: true",
        type="annotation_list",
        ann_file=str(ann),
        data_prefix=str(tmp_path),
    )
    ds = load(type="annotation_list", ann_file=str(ann), data_prefix=str(tmp_path), allow_empty=True)
    assert ds["label"] == [[0, 2], [], [1]]
    ann.write_text("img/0.png 0,x\n")
    refused(
        f"{ann} line 1: label 'x' is not a whole number",
        type="annotation_list",
        ann_file=str(ann),
        data_prefix=str(tmp_path),
    )
    refused("labels_sep ' ' cannot separate labels", type="annotation_list", ann_file=str(ann), labels_sep=" ")


# ----------------------------------------------------------------------------- image folders with metadata


def test_image_folder_with_metadata_jsonl(tmp_path):
    labels = make_multilabel_folder(tmp_path / "train", count=6)
    ds = load(type="imagefolder", path=str(tmp_path / "train"))
    assert_multi_label(ds, ["cat", "dog", "fox"])
    assert [[ds.features["label"].feature.int2str(i) for i in row] for row in ds["label"]] == labels
    assert np.asarray(ds[0]["image"]).shape == (15, 15, 3)


def test_image_folder_with_metadata_csv_and_single_labels(tmp_path):
    images(tmp_path / "f", 3)
    (tmp_path / "f" / "metadata.csv").write_text('file_name,labels\n0.png,"b,a"\n1.png,a\n2.png,"c, b"\n')
    ds = load(type="imagefolder", path=str(tmp_path / "f"))
    assert ds["label"] == [[1, 0], [0], [2, 1]] and ds.features["label"].feature.names == ["a", "b", "c"]
    (tmp_path / "f" / "metadata.csv").unlink()
    (tmp_path / "f" / "metadata.jsonl").write_text(
        '{"file_name": "0.png", "label": "y"}\n{"file_name": "1.png", "label": "x"}\n'
    )
    ds = load(type="imagefolder", path=str(tmp_path / "f"))
    assert isinstance(ds.features["label"], datasets.ClassLabel) and ds["label"] == [1, 0]


def test_image_folder_metadata_errors_name_the_file_and_line(tmp_path):
    folder = images(tmp_path / "f", 2)
    meta = folder / "metadata.jsonl"
    meta.write_text('{"file_name": "0.png", "labels": ["a"]}\n{"file_name": "1.png", "labels": ["a", "z"]}\n')
    refused(
        f"{meta} line 2: label 'z' is not among the 2 classes of classes ['a', 'b']",
        type="imagefolder",
        path=str(folder),
        classes=["a", "b"],
    )
    meta.write_text('{"file_name": "0.png", "labels": ["a"]}\n{"file_name": "1.png", "labels": []}\n')
    refused(f"{meta} line 2: no labels", type="imagefolder", path=str(folder))
    assert load(type="imagefolder", path=str(folder), allow_empty=True)["label"] == [[0], []]
    meta.write_text('{"file_name": "0.png", "labels": ["a"]}\n{"file_name": "1.png", "labels": ["a"}\n')
    refused(f"{meta} line 2: not a JSON object", type="imagefolder", path=str(folder))
    meta.write_text('{"file_name": "0.png", "labels": ["a"]}\n{"file_name": "9.png", "labels": ["a"]}\n')
    refused(f"{meta} line 2: image {folder / '9.png'} does not exist", type="imagefolder", path=str(folder))


# ----------------------------------------------------------------------------- saved and Hub datasets


def saved(tmp_path, labels, feature) -> str:
    ds = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(np.full((4, 4, 3), 9, dtype=np.uint8))] * len(labels), "tags": labels},
        features=datasets.Features({"image": datasets.Image(), "tags": datasets.List(feature)}),
    )
    ds.save_to_disk(str(tmp_path / "saved"))
    return str(tmp_path / "saved")


def test_saved_dataset_with_a_sequence_of_class_labels(tmp_path):
    path = saved(tmp_path, [[0, 1], [2]], datasets.ClassLabel(names=["x", "y", "z"]))
    ds = load(type="disk", path=path, label_column="tags")
    assert_multi_label(ds, ["x", "y", "z"])
    assert ds["label"] == [[0, 1], [2]]


def test_saved_dataset_with_lists_of_names_or_of_ids(tmp_path):
    ds = load(
        type="disk", path=saved(tmp_path / "a", [["y", "x"], ["z"]], datasets.Value("string")), label_column="tags"
    )
    assert_multi_label(ds, ["x", "y", "z"])
    assert ds["label"] == [[1, 0], [2]]
    path = saved(tmp_path / "b", [[0, 1], [2]], datasets.Value("int64"))
    refused("labels are lists of Value('int64') without class names", type="disk", path=path, label_column="tags")
    assert_multi_label(load(type="disk", path=path, label_column="tags", classes=["p", "q", "r"]), ["p", "q", "r"])


# ----------------------------------------------------------------------------- PASCAL VOC


def test_voc_layout_keeps_difficult_only_classes_apart(tmp_path):
    ds = load(type="voc", root=str(write_voc(tmp_path / "VOC2007")), split="trainval")
    assert_multi_label(ds, VOC_CLASSES)
    names = [[VOC_CLASSES[i] for i in row] for row in ds["label"]]
    difficult = [[VOC_CLASSES[i] for i in row] for row in ds["difficult"]]
    assert names == [["dog", "person"], ["cat"], []]
    assert difficult == [[], ["chair"], ["bird"]]  # a class also shown by an easy object is not difficult
    assert np.asarray(ds[1]["image"]).shape == (10, 12, 3)


def test_voc_errors_name_the_xml_file_and_line(tmp_path):
    root = write_voc(tmp_path / "VOC2007")
    xml = root / "Annotations" / "000002.xml"
    xml.write_text(xml.read_text().replace("<name>chair</name>", "<name>chiar</name>"))
    refused(
        f"{xml} line 15: label 'chiar' is not among the 20 classes of PASCAL VOC (did you mean \"chair\"?)",
        type="voc",
        root=str(root),
    )
    xml.write_text(xml.read_text().replace("</object>", "</objet>", 1))
    refused(f"{xml} line 8, column 4: the XML does not parse", type="voc", root=str(root))
    refused("no image list", type="voc", root=str(root), split="test")


def test_voc_annotations_are_read_in_the_encoding_they_declare(tmp_path):
    root = write_voc(tmp_path / "VOC2007")
    xml = root / "Annotations" / "000002.xml"
    text = xml.read_text().replace("<pose>Left</pose>", "<pose>Gauche \u00e0 c\u00f4t\u00e9</pose>")
    xml.write_bytes(('<?xml version="1.0" encoding="UTF-16"?>\n' + text).encode("utf-16"))
    latin = root / "Annotations" / "000001.xml"
    latin.write_bytes(('<?xml version="1.0" encoding="ISO-8859-1"?>\n' + text.replace("cat", "dog")).encode("latin-1"))
    names = [[VOC_CLASSES[i] for i in row] for row in load(type="voc", root=str(root))["label"]]
    assert names == [["dog"], ["cat"], []]
    xml.write_bytes(xml.read_bytes().replace("chair".encode("utf-16-le"), "chiar".encode("utf-16-le")))
    refused(f"{xml} line 16: label 'chiar' is not among", type="voc", root=str(root))  # lines counted in UTF-16 too


def test_what_a_list_cannot_honestly_say_is_refused(tmp_path):
    """An image listed twice, a class name holding labels_sep or a control character, an id leading out."""
    folder = images(tmp_path / "f" / "images", 2).parent
    (folder / "metadata.jsonl").write_text('{"file_name": "images/0.png", "labels": ["cat,dog"]}\n')
    refused("metadata.jsonl line 1: the class name 'cat,dog' holds ','", type="imagefolder", path=str(folder))
    (folder / "metadata.jsonl").write_text('{"file_name": "images/0.png", "label": "cat\\tdog"}\n')
    refused(
        "metadata.jsonl line 1: the class name 'cat\\tdog' holds a line break or control character",
        type="imagefolder",
        path=str(folder),
    )
    lines = tmp_path / "list.txt"
    lines.write_text("0.png 0\n1.png 1\nsub/../0.png 1\n")
    refused(
        f"{lines} line 3: 0.png is listed again (first at line 1)",
        type="annotation_list",
        ann_file=str(lines),
        data_prefix=str(folder / "images"),
    )
    root = write_voc(tmp_path / "VOC2007")
    ids = root / "ImageSets" / "Main" / "trainval.txt"
    ids.write_text(ids.read_text() + "000001\n")
    refused(f"{ids} line 4: 000001 is listed again (first at line 1)", type="voc", root=str(root))


# ----------------------------------------------------------------------------- the data door


def recipe_for(tmp_path, train, val, **sections):
    return load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(train, val, **sections)))


def test_a_single_label_val_list_joins_a_multi_label_train_split(tmp_path, multilabel_data):
    train, _ = multilabel_data
    folder = images(tmp_path / "v", 3)
    (folder / "metadata.jsonl").write_text(
        "".join(
            json.dumps({"file_name": f"{i}.png", "label": name}) + "\n" for i, name in enumerate(["fox", "cat", "dog"])
        )
    )
    dsets = build_datasets(recipe_for(tmp_path, train, folder).data, seed=0)
    assert_multi_label(dsets["val"], ["cat", "dog", "fox"])
    assert dsets["val"]["label"] == [[2], [0], [1]]
    with pytest.raises(HfclsError, match="data.val has lists of classes .multi-label. but data.train one class"):
        build_datasets(recipe_for(tmp_path, folder, train).data, seed=0)


@pytest.mark.parametrize("in_memory", [False, True], ids=["workers", "in-memory"])
def test_loaders_carry_multi_hot_vectors_with_difficult_classes_ignored(tmp_path, in_memory):
    root = write_voc(tmp_path / "VOC2007")
    voc = {"type": "voc", "root": str(root)}
    recipe = recipe_for(
        tmp_path,
        None,
        None,
        data={
            "train": voc,
            "val": voc,
            "batch_size": 3,
            "in_memory": in_memory,
            "train_pipeline": [{"type": "Resize", "size": [8, 8]}],
            "eval_pipeline": [{"type": "Resize", "size": [8, 8]}],
        },
    )
    dsets = build_datasets(recipe.data, seed=0)
    dog, person, cat, chair, bird = (VOC_CLASSES.index(n) for n in ("dog", "person", "cat", "chair", "bird"))
    expected = torch.zeros(3, 20)
    expected[0, [dog, person]] = 1
    expected[1, cat], expected[1, chair], expected[2, bird] = 1, -1, -1
    with accelerator_session(recipe) as accelerator:
        (batch,) = list(build_eval_loader(recipe.data, dsets["val"], accelerator, seed=0))
        assert batch["labels"].dtype == torch.float32 and torch.equal(batch["labels"], expected)
        train = build_train_loader(recipe, dsets["train"], accelerator)
        train.set_epoch(0)
        (batch,) = list(train)
    # Training treats difficult-only classes as absent; the order is the epoch's shuffle.
    rows = {tuple(row.tolist()) for row in batch["labels"]}
    assert rows == {tuple(row.tolist()) for row in expected.clamp(min=0)}
