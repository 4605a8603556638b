"""The data door: datasets from the recipe's sources (held-out val, aligned labels), and loaders of one protocol."""

import shutil

import pytest
import torch

from hfcls.data.build import build_datasets, build_eval_loader, build_train_loader
from hfcls.engine.setup import accelerator_session
from hfcls.recipe import load_recipe

from conftest import tiny_recipe_dict, write_recipe


def test_train_val_split_holds_out_a_stratified_fraction(tiny_data):
    train_dir, _ = tiny_data
    recipe = load_recipe(
        write_recipe(train_dir.parent / "r.yaml", tiny_recipe_dict(train_dir, train_dir)),
        ["data.val=null", "data.train_val_split=0.25"],
    )
    dsets = build_datasets(recipe.data, seed=0)
    assert (len(dsets["train"]), len(dsets["val"])) == (18, 6)
    assert sorted(dsets["val"]["label"]) == [0, 0, 1, 1, 2, 2]


def test_val_folder_missing_a_class_keeps_train_label_ids(tiny_data, tmp_path):
    train_dir, val_dir = tiny_data
    shutil.rmtree(val_dir / "cat")
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(train_dir, val_dir)))
    dsets = build_datasets(recipe.data, seed=0)
    assert dsets["val"].features["label"].names == ["cat", "dog", "fox"]
    assert sorted(set(dsets["val"]["label"])) == [1, 2]


def pixels(batches):
    return [batch["pixel_values"] for batch in batches]


@pytest.mark.parametrize(
    "kind", [{}, {"in_memory": True}, {"decode": "cpu"}], ids=["workers", "in-memory", "on-device"]
)
def test_every_loader_kind_keeps_the_protocol(tmp_path, tiny_data, kind):
    data = {
        **kind,
        "train_pipeline": [{"type": "RandomCrop", "size": 12, "padding": 2}, {"type": "RandomHorizontalFlip"}],
    }
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data, data=data)))
    dsets = build_datasets(recipe.data, recipe.seed)
    with accelerator_session(recipe) as accelerator:
        train = build_train_loader(recipe, dsets["train"], accelerator)
        assert len(train) == 3  # 24 images, batch 8
        train.set_epoch(1)
        train.set_resolution(None)  # the pipeline's own side (no data.progressive_resizing)
        full = list(train)
        for batch in full:
            assert batch["pixel_values"].shape == (8, 3, 12, 12) and batch["pixel_values"].dtype == torch.uint8
            assert batch["labels"].dtype == torch.long and batch["valid"].all() and batch["bad_files"] == []
        train.set_epoch(1)
        assert all(torch.equal(a, b) for a, b in zip(pixels(train), pixels(full)))  # seed + epoch: the same
        train.set_epoch(2)
        assert not all(torch.equal(a, b) for a, b in zip(pixels(train), pixels(full)))
        train.set_epoch(1)
        partial = iter(train)
        next(partial)
        state = train.state_dict()
        assert state == {"batches": 1}
        resumed = build_train_loader(recipe, dsets["train"], accelerator)
        resumed.set_epoch(1)
        resumed.load_state_dict(state)
        rest = pixels(resumed)
        assert len(rest) == 2 and all(torch.equal(a, b) for a, b in zip(rest, pixels(full)[1:]))

        val = build_eval_loader(recipe.data, dsets["val"], accelerator, recipe.seed, batch_size=5)
        batches = list(val)
        assert len(val) == len(batches) == 3  # 12 images, in order
        assert sum(int(b["valid"].sum()) for b in batches) == 12
        assert torch.cat([b["labels"][b["valid"]] for b in batches]).tolist() == sorted(dsets["val"]["label"])


def test_each_epochs_side_reaches_the_persistent_workers(tmp_path, tiny_data):
    data = {"num_workers": 1, "persistent_workers": True, "progressive_resizing": [[0, 12], [1, 16]]}
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data, data=data)))
    dsets = build_datasets(recipe.data, recipe.seed, ("train",))
    with accelerator_session(recipe) as accelerator:
        train = build_train_loader(recipe, dsets["train"], accelerator)
        for epoch, side in ((0, 12), (1, 16), (2, None)):  # None: back to the pipeline's RandomResizedCrop(16)
            train.set_epoch(epoch)
            train.set_resolution(side)
            assert {tuple(batch.shape) for batch in pixels(train)} == {(8, 3, side or 16, side or 16)}
