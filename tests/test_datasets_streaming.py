"""Streaming train sources: read in parts per process, reshuffled per epoch, a fixed step count."""

import io
import json
import os
import subprocess
import sys
import tarfile

import datasets
import numpy as np
import pytest
from conftest import REPO, make_image_folder, tiny_recipe_dict, write_recipe
from layouts import isolated_cache  # noqa: F401
from PIL import Image

from hfcls.data.loaders import attach_transforms, build_datasets, build_loader
from hfcls.engine import train
from hfcls.errors import HfclsError
from hfcls.recipe import recipe_from_dict
from hfcls.tools import browse, verify

NAMES = ["cat", "dog", "fox"]


def save_numbered(path, count=16, shards=2):
    """Rows whose 4x4 grey-level image is 10 x their number: the number survives decoding."""
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=NAMES)})
    pixels = [np.full((4, 4, 3), 10 * i, np.uint8) for i in range(count)]
    ds = datasets.Dataset.from_dict({"image": pixels, "label": [i % 3 for i in range(count)]}, features=features)
    ds.save_to_disk(str(path), num_shards=shards)
    return ds


def stream_data(tmp_path, **data):
    """A recipe's data section with a streaming train source and identity transforms."""
    save_numbered(tmp_path / "saved")
    spec = {"type": "disk", "path": str(tmp_path / "saved"), "streaming": True}
    recipe = tiny_recipe_dict(None, None, data={"train": spec, "val": None, "batch_size": 4, "train_pipeline": [],
                                                "steps_per_epoch": 2, "shuffle_buffer": 100, **data})
    return recipe_from_dict(recipe).data


def numbers_read(data, rank, world_size, epoch=0):
    dsets = attach_transforms(build_datasets(data, seed=0, splits=("train",)), data)
    loader = build_loader(dsets["train"], data, data.batch_size, True, 0, False, process=(rank, world_size, "cpu"))
    loader.set_epoch(epoch)
    batches = list(loader)
    assert len(batches) == len(loader) == data.steps_per_epoch
    return [int(image[0, 0, 0]) // 10 for batch in batches for image in batch["pixel_values"]]


def test_streaming_sources_read_back_exactly(tmp_path):
    written = save_numbered(tmp_path / "saved", count=5)
    (tmp_path / "parquet").mkdir()
    written.to_parquet(str(tmp_path / "parquet" / "train-00000-of-00001.parquet"))
    for path in ("saved", "parquet"):
        stream = build_datasets(recipe_from_dict(tiny_recipe_dict(None, None, data={
            "train": {"type": "disk", "path": str(tmp_path / path), "streaming": True}, "val": None})).data, seed=0)
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
    spec = {"type": "disk", "path": str(tmp_path / "wds"), "streaming": True, "image_column": "png",
            "label_column": "cls", "classes": NAMES}
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


@pytest.mark.parametrize("change, message", [
    ({"steps_per_epoch": None}, "a stream has no length: set data.steps_per_epoch"),
    ({"train_val_split": 0.2}, "data.train_val_split cannot split a stream"),
])
def test_stream_recipe_errors(tmp_path, change, message):
    data = stream_data(tmp_path, **change)
    with pytest.raises(HfclsError, match=message):
        numbers_read(data, 0, 1)


def test_streaming_validation_is_refused(tmp_path):
    data = stream_data(tmp_path)
    dsets = attach_transforms(build_datasets(data, seed=0, splits=("train",)), data)
    with pytest.raises(HfclsError, match="streaming .* is for the training data"):
        build_loader(dsets["train"], data, 4, False, 0, False)


def test_verify_and_browse_read_streams(tmp_path, capsys):
    save_numbered(tmp_path / "saved", count=5)
    val = make_image_folder(tmp_path / "val", per_class=1)
    train_spec = {"type": "disk", "path": str(tmp_path / "saved"), "streaming": True}
    path = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(None, val, data={"train": train_spec,
                                                                               "steps_per_epoch": 1}))
    assert verify.cli([str(path)]) == 0
    assert "all 8 images in train, val decode" in capsys.readouterr().out
    browse.cli([str(path), "--n", "9", "--out", str(tmp_path / "grid.png")])
    assert capsys.readouterr().out == f"saved 5 train samples to {tmp_path / 'grid.png'}\n"


@pytest.mark.slow
def test_two_processes_train_from_one_stream(tmp_path):
    """Two gloo processes (ACCELERATE_USE_CPU makes a GPU-less launch MULTI_CPU), each on its part."""
    save_numbered(tmp_path / "saved", count=24, shards=4)
    val = make_image_folder(tmp_path / "val", per_class=2)
    train_spec = {"type": "disk", "path": str(tmp_path / "saved"), "streaming": True}
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(None, val, data={
        "train": train_spec, "steps_per_epoch": 3, "batch_size": 4}, train={"epochs": 2}))
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--main_process_port", "29517", str(REPO / "hfcls" / "train.py"), str(recipe),
              "--work-dir", str(tmp_path / "work")]
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "batch 4 x 2 processes x 1 accumulation = 8; 3 steps per epoch" in done.stdout + done.stderr
    rows = [json.loads(line) for line in (tmp_path / "work" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [3, 6]
