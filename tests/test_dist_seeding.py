"""Augmentations differ between processes, also inside DataLoader workers."""

import torch

from hfcls.data.loaders import attach_transforms, build_datasets, build_loader
from hfcls.dist import seed_worker
from hfcls.recipe import load_recipe

from conftest import tiny_recipe_dict, write_recipe


def first_batch(dataset, data, seed, worker_init_fn):
    # No shuffling: every call loads the same images, so only augmentation can differ.
    loader = build_loader(dataset, data, 8, False, seed, False)
    loader.worker_init_fn = worker_init_fn
    return next(iter(loader))["pixel_values"]


def test_worker_augmentations_differ_between_ranks(tmp_path, tiny_data, monkeypatch):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data, data={"num_workers": 1})))
    train = attach_transforms(build_datasets(recipe.data, recipe.seed, ("train",)), recipe.data)["train"]

    def batch_on(rank, worker_init_fn=seed_worker):
        monkeypatch.setenv("RANK", rank)  # as torchrun sets it; workers inherit it
        return first_batch(train, recipe.data, recipe.seed, worker_init_fn)

    # Without the rank in the seed, worker 0 of every process draws the same crops and flips.
    assert torch.equal(batch_on("0", None), batch_on("1", None))
    rank0, rank1 = batch_on("0"), batch_on("1")
    assert not torch.equal(rank0, rank1)
    assert torch.equal(rank1, batch_on("1"))  # still reproducible from the recipe's seed
