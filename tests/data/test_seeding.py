"""Augmentation randomness: a function of (seed, epoch, sample) in training, and different between
processes inside DataLoader workers (seed_worker)."""

import torch

from hfcls.data.build import build_datasets, with_transform
from hfcls.data.decode import collate
from hfcls.data.loaders import data_loader
from hfcls.data.seeding import SeededSamples, sample_seed, seed_worker
from hfcls.recipe import load_recipe

from conftest import tiny_recipe_dict, write_recipe


def first_batch(dataset, data, seed, worker_init_fn):
    # No shuffling: every call loads the same images, so only augmentation can differ.
    loader = data_loader(dataset, data, 8, False, seed, False, collate, worker_init_fn, workers=data.num_workers)
    return next(iter(loader))["pixel_values"]


def augmented_train_split(tmp_path, tiny_data, **data):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data, data=data)))
    train = build_datasets(recipe.data, recipe.seed, ("train",))["train"]
    return recipe, with_transform(train, recipe.data.train_pipeline, "data.train_pipeline", recipe.data.to_rgb)


def test_worker_augmentations_differ_between_ranks(tmp_path, tiny_data, monkeypatch):
    recipe, train = augmented_train_split(tmp_path, tiny_data, num_workers=1)

    def batch_on(rank, worker_init_fn=seed_worker):
        monkeypatch.setenv("RANK", rank)  # as torchrun sets it; workers inherit it
        return first_batch(train, recipe.data, recipe.seed, worker_init_fn)

    # Without the rank in the seed, worker 0 of every process draws the same crops and flips.
    assert torch.equal(batch_on("0", None), batch_on("1", None))
    rank0, rank1 = batch_on("0"), batch_on("1")
    assert not torch.equal(rank0, rank1)
    assert torch.equal(rank1, batch_on("1"))  # still reproducible from the recipe's seed


def test_seeded_samples_depend_on_seed_epoch_and_index_only(tmp_path, tiny_data):
    _, train = augmented_train_split(tmp_path, tiny_data)
    samples = SeededSamples(train, seed=3)
    one = samples[5]
    assert one["seed"] == sample_seed(3, 0, 5)
    torch.manual_seed(123)  # the global generator does not matter
    assert torch.equal(samples.__getitems__([2, 5])[1]["pixel_values"], one["pixel_values"])
    samples.set_epoch(1)
    assert samples[5]["seed"] == sample_seed(3, 1, 5) != one["seed"]
    assert not torch.equal(samples[5]["pixel_values"], one["pixel_values"])
    assert len({sample_seed(3, epoch, index) for epoch in range(3) for index in range(100)}) == 300
