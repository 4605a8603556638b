"""A one-epoch training run through each source type (tiny model, tiny images)."""

import json

import numpy as np
import pytest

from hfcls.api import train
from hfcls.data.build import build_datasets
from hfcls.recipe import recipe_from_dict

from conftest import tiny_recipe_dict
from layouts import isolated_cache, write_cifar10, write_cifar100, write_imagenet, write_mnist  # noqa: F401


def imagenet_sources(root):
    write_imagenet(root / "imagenet", per_class=4)
    return (
        {"type": "imagenet", "root": str(root / "imagenet"), "split": "train"},
        {"type": "imagenet", "root": str(root / "imagenet"), "split": "val"},
    )


def annotation_list_sources(root):
    write_imagenet(root / "imagenet", per_class=4)
    meta = root / "imagenet" / "meta"
    return tuple(
        {
            "type": "annotation_list",
            "ann_file": str(meta / f"{split}.txt"),
            "data_prefix": str(root / "imagenet" / split),
            "classes": str(meta / "synsets.txt"),
        }
        for split in ("train", "val")
    )


def split_sources(kind, write, **keys):
    def sources(root):
        write(root / kind)
        return tuple({"type": kind, "root": str(root / kind), "split": split, **keys} for split in ("train", "test"))

    return sources


def disk_sources(root):
    train_spec, val_spec = split_sources("cifar10", write_cifar10)(root)
    dsets = build_datasets(
        recipe_from_dict(tiny_recipe_dict(None, None, data={"train": train_spec, "val": val_spec})).data, seed=0
    )
    dsets.save_to_disk(str(root / "saved"))
    return (
        {"type": "disk", "path": str(root / "saved"), "split": "train"},
        {"type": "disk", "path": str(root / "saved"), "split": "val"},
    )


SOURCES = {  # kind: (write the data and give train/val specs, class count, first class name)
    "imagenet": (imagenet_sources, 3, "n01440764"),
    "annotation_list": (annotation_list_sources, 3, "n01440764"),
    "cifar10": (split_sources("cifar10", write_cifar10), 10, "airplane"),
    "cifar100": (split_sources("cifar100", write_cifar100, labels="coarse"), 20, "coarse00"),
    "mnist": (split_sources("mnist", lambda root: write_mnist(root, gz=True)), 10, "0"),
    "fashion_mnist": (split_sources("fashion_mnist", write_mnist), 10, "T-shirt/top"),
    "disk": (disk_sources, 10, "airplane"),
}


@pytest.mark.parametrize("kind", SOURCES)
def test_one_epoch_through_each_source(tmp_path, kind):
    make_sources, num_classes, first_class = SOURCES[kind]
    train_spec, val_spec = make_sources(tmp_path)
    data = {"train": train_spec, "val": val_spec, "batch_size": 4}
    recipe = recipe_from_dict(tiny_recipe_dict(None, None, data=data, evaluation={"topk": [1]}))
    metrics = train(recipe, tmp_path / "work")
    assert 0.0 <= metrics["accuracy_top1"] <= 100.0 and np.isfinite(metrics["loss"])
    config = json.loads((tmp_path / "work" / "latest" / "config.json").read_text())
    assert len(config["id2label"]) == num_classes
    assert config["id2label"]["0"] == first_class
    row = json.loads((tmp_path / "work" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["step"] >= 1 and np.isfinite(row["loss"])
