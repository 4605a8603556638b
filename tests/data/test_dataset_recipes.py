"""The base dataset recipes read the layouts of docs/prepare_datasets.md exactly where that page puts them."""

import pytest

from hfcls.data.build import build_datasets, class_names
from hfcls.data.transforms import build_pipeline
from hfcls.recipe import load_recipe
from hfcls.recipe.preprocessing import preprocessor_kwargs

from conftest import REPO, write_recipe
from layouts import isolated_cache, write_cifar10, write_cifar100, write_imagenet, write_mnist  # noqa: F401

BASES = REPO / "recipes" / "_base_"


def write_custom(root):
    """data/my_dataset as recipes/_base_/datasets/custom_annotation_list.yaml describes it."""
    written = write_imagenet(root / "my_dataset" / "scratch", per_class=2)
    images = root / "my_dataset" / "images"
    (root / "my_dataset" / "scratch" / "train").rename(images)
    (root / "my_dataset" / "classes.txt").write_text("tench\ngoldfish\nwhite shark\n")
    meta = root / "my_dataset" / "meta"
    meta.mkdir()
    lines = [f"{path} {label}\n" for path, label, _ in written["train"]]
    (meta / "train.txt").write_text("".join(lines[::2]))
    (meta / "val.txt").write_text("".join(lines[1::2]))
    (meta / "test.txt").write_text("".join(line.split()[0] + "\n" for line in lines))


LAYOUTS = {  # base recipe: (writer under data/, {split: size}, first class name)
    "imagenet_bs32": (lambda data: write_imagenet(data / "imagenet"), {"train": 9, "val": 9}, "n01440764"),
    "imagenet_bs64": (lambda data: write_imagenet(data / "imagenet"), {"train": 9, "val": 9}, "n01440764"),
    "cifar10_bs16": (lambda data: write_cifar10(data / "cifar"), {"train": 15, "val": 3, "test": 3}, "airplane"),
    "cifar100_bs16": (lambda data: write_cifar100(data / "cifar"), {"train": 6, "val": 6, "test": 6}, "fine00"),
    "mnist_bs128": (lambda data: write_mnist(data / "mnist", gz=True), {"train": 12, "val": 6, "test": 6}, "0"),
    "fashion_mnist_bs128": (
        lambda data: write_mnist(data / "fashion_mnist"),
        {"train": 12, "val": 6, "test": 6},
        "T-shirt/top",
    ),
    "custom_annotation_list": (write_custom, {"train": 3, "val": 3, "test": 6}, "tench"),
}


@pytest.mark.parametrize("name", LAYOUTS)
def test_base_dataset_recipe_reads_its_layout(tmp_path, monkeypatch, name):
    write, sizes, first_class = LAYOUTS[name]
    write(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    data = load_with_model(tmp_path, name).data
    dsets = build_datasets(data, seed=0)
    assert {split: len(ds) for split, ds in dsets.items()} == sizes
    assert class_names(dsets["train"])[0] == first_class
    for ds in dsets.values():
        assert class_names(ds) == class_names(dsets["train"])
    build_pipeline(data.train_pipeline, "data.train_pipeline")
    build_pipeline(data.eval_pipeline, "data.eval_pipeline")
    assert preprocessor_kwargs(data.eval_pipeline, data.mean, data.std)["do_resize"]


def load_with_model(folder, name):
    """The base dataset recipe `name` completed with the tiny model base."""
    bases = [str(BASES / "datasets" / f"{name}.yaml"), str(BASES / "models" / "resnet-tiny.yaml")]
    return load_recipe(write_recipe(folder / f"{name}.yaml", {"_base_": bases}))


def test_bs64_differs_from_bs32_only_in_batch_and_workers(tmp_path):
    bs32, bs64 = (load_with_model(tmp_path, f"imagenet_bs{n}").to_dict()["data"] for n in (32, 64))
    assert (bs32.pop("batch_size"), bs64.pop("batch_size")) == (32, 64)
    assert (bs32.pop("num_workers"), bs64.pop("num_workers")) == (2, 4)
    assert bs64 == bs32
