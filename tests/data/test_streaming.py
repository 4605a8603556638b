"""Streaming train sources: read in parts per process, reshuffled per epoch, a fixed step count."""

import io
import json
import tarfile

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from hfcls.api import train
from hfcls.data.build import build_datasets, build_eval_loader, with_transform
from hfcls.data.streaming import TransformedStream, build_stream_loader
from hfcls.engine.setup import accelerator_session
from hfcls.errors import HfclsError
from hfcls.recipe import recipe_from_dict

from conftest import make_image_folder, tiny_recipe_dict
from layouts import isolated_cache, numbered_stream_recipe, save_numbered  # noqa: F401

NAMES = ["cat", "dog", "fox"]


def stream_recipe(tmp_path, **data):
    """A recipe with a streaming train source and identity transforms."""
    return numbered_stream_recipe(tmp_path, **{"steps_per_epoch": 2, "shuffle_buffer": 100, **data})


def stream_data(tmp_path, **data):
    return stream_recipe(tmp_path, **data).data


def transformed_train(data):
    train = build_datasets(data, seed=0, splits=("train",))["train"]
    return with_transform(train, data.train_pipeline, "data.train_pipeline", data.to_rgb)


def numbers_read(data, rank, world_size, epoch=0):
    """The numbers of the samples process `rank` of `world_size` reads in `epoch`."""
    stream = transformed_train(data)
    assert isinstance(stream, TransformedStream)
    loader = build_stream_loader(stream, data, {"num_workers": 0}, seed=0, process=(rank, world_size, "cpu"))
    loader.set_epoch(epoch)
    batches = list(loader)
    assert len(batches) == len(loader) == data.steps_per_epoch
    return [int(image[0, 0, 0]) // 10 for batch in batches for image in batch["pixel_values"]]


def test_streaming_sources_read_back_exactly(tmp_path):
    written = save_numbered(tmp_path / "saved", count=5)
    (tmp_path / "parquet").mkdir()
    written.to_parquet(str(tmp_path / "parquet" / "train-00000-of-00001.parquet"))
    for path in ("saved", "parquet"):
        stream = build_datasets(
            recipe_from_dict(
                tiny_recipe_dict(
                    None,
                    None,
                    data={"train": {"type": "disk", "path": str(tmp_path / path), "streaming": True}, "val": None},
                )
            ).data,
            seed=0,
        )
        ds = stream["train"]
        assert isinstance(ds, datasets.IterableDataset)
        assert ds.features["label"].names == NAMES
        rows = list(ds)
        assert [row["label"] for row in rows] == [0, 1, 2, 0, 1]
        for row, expected in zip(rows, written):
            np.testing.assert_array_equal(np.asarray(row["image"]), np.asarray(expected["image"]))


def test_webdataset_tar_shards_stream(tmp_path):
    (tmp_path / "wds").mkdir()
    with tarfile.open(tmp_path / "wds" / "train-0000.tar", "w") as tar:
        for i in range(4):
            png = io.BytesIO()
            Image.fromarray(np.full((4, 4, 3), 10 * i, np.uint8)).save(png, format="PNG")
            for name, content in ((f"{i:04d}.png", png.getvalue()), (f"{i:04d}.cls", str(i % 3).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    spec = {
        "type": "disk",
        "path": str(tmp_path / "wds"),
        "streaming": True,
        "image_column": "png",
        "label_column": "cls",
        "classes": NAMES,
    }
    ds = build_datasets(recipe_from_dict(tiny_recipe_dict(None, None, data={"train": spec, "val": None})).data, 0)
    rows = list(ds["train"])
    assert [row["label"] for row in rows] == [0, 1, 2, 0]
    assert [int(np.asarray(row["image"])[0, 0, 0]) for row in rows] == [0, 10, 20, 30]


def test_each_process_reads_its_own_part(tmp_path):
    data = stream_data(tmp_path)
    first, second = numbers_read(data, 0, 2), numbers_read(data, 1, 2)
    assert len(first) == len(second) == 8
    assert sorted(first + second) == list(range(16))


def test_shuffled_per_epoch_and_the_same_on_every_run(tmp_path):
    data = stream_data(tmp_path)
    assert numbers_read(data, 0, 1) == numbers_read(data, 0, 1)
    assert numbers_read(data, 0, 1) != numbers_read(data, 0, 1, epoch=1)
    assert sorted(numbers_read(data, 0, 1, epoch=1)) != list(range(8))  # two shards' rows mixed


def test_a_stream_shorter_than_an_epoch_starts_over(tmp_path):
    data = stream_data(tmp_path, steps_per_epoch=5)
    read = numbers_read(data, 1, 2)
    assert len(read) == 20 and set(read) == set(numbers_read(stream_data(tmp_path / "again"), 1, 2))
    assert all(read.count(number) >= 2 for number in set(read))


def test_one_epoch_from_a_stream(tmp_path):
    save_numbered(tmp_path / "saved", count=24, shards=2)
    val = make_image_folder(tmp_path / "val", per_class=2)
    train_spec = {"type": "disk", "path": str(tmp_path / "saved"), "streaming": True}
    recipe = recipe_from_dict(tiny_recipe_dict(None, val, data={"train": train_spec, "steps_per_epoch": 3}))
    metrics = train(recipe, tmp_path / "work")
    row = json.loads((tmp_path / "work" / "metrics.jsonl").read_text().splitlines()[-1])
    assert row["step"] == 3 and np.isfinite(row["loss"]) and 0 <= metrics["accuracy_top1"] <= 100


@pytest.mark.parametrize(
    "change, message",
    [
        ({"steps_per_epoch": None}, "a stream has no length: set data.steps_per_epoch"),
        ({"train_val_split": 0.2}, "data.train_val_split cannot split a stream"),
    ],
)
def test_stream_recipe_errors(tmp_path, change, message):
    data = stream_data(tmp_path, **change)
    with pytest.raises(HfclsError, match=message):
        numbers_read(data, 0, 1)


def test_streaming_validation_is_refused(tmp_path):
    recipe = stream_recipe(tmp_path)
    stream = build_datasets(recipe.data, seed=0, splits=("train",))["train"]
    with accelerator_session(recipe) as accelerator:
        with pytest.raises(HfclsError, match="streaming .* is for the training data"):
            build_eval_loader(recipe.data, stream, accelerator, recipe.seed)


def test_mixup_is_refused_on_a_stream(tmp_path):
    from hfcls.data.build import build_train_loader

    recipe = stream_recipe(tmp_path)
    recipe.train.mixup_alpha = 0.4
    stream = build_datasets(recipe.data, seed=0, splits=("train",))["train"]
    with accelerator_session(recipe) as accelerator:
        with pytest.raises(HfclsError, match="mixup_alpha/cutmix_alpha need per-sample seeds"):
            build_train_loader(recipe, stream, accelerator)


def test_the_door_gives_a_stream_loader_of_the_protocol(tmp_path):
    from hfcls.data.build import build_train_loader

    recipe = stream_recipe(tmp_path)
    stream = build_datasets(recipe.data, seed=0, splits=("train",))["train"]
    with accelerator_session(recipe) as accelerator:
        loader = build_train_loader(recipe, stream, accelerator)
        loader.set_epoch(0)
        batches = list(loader)
    assert len(loader) == len(batches) == 2
    assert all(b["pixel_values"].dtype == torch.uint8 and b["valid"].all() for b in batches)
    read = [int(image[0, 0, 0]) // 10 for batch in batches for image in batch["pixel_values"]]
    assert read == numbers_read(recipe.data, 0, 1)  # the seed and the sharding of build_stream_loader
