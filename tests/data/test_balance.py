"""Class-balanced sampling: MMClassification's repeat factors (or inverse frequencies) as weights,
each epoch's draw a function of (seed, epoch): the same on every process and after a resume."""

import math

import datasets
import pytest
import torch

from hfcls.data.balance import class_counts, sample_weights
from hfcls.data.build import build_datasets, build_train_loader
from hfcls.data.in_memory import InMemoryLoader
from hfcls.data.seeding import balanced_rows
from hfcls.engine.setup import accelerator_session
from hfcls.errors import HfclsError
from hfcls.recipe import load_recipe, recipe_from_dict

from conftest import make_image_folder, tiny_recipe_dict, write_recipe


def labelled(labels, names=("a", "b", "c")):
    label = datasets.ClassLabel(names=list(names))
    feature = datasets.List(label) if isinstance(labels[0], list) else label
    return datasets.Dataset.from_dict({"label": labels}, features=datasets.Features({"label": feature}))


def test_repeat_factors_follow_class_balanced_dataset():
    ds = labelled([0] * 2 + [1] * 6 + [2] * 12)  # f(c) = 0.1, 0.3, 0.6
    assert class_counts(ds).tolist() == [2, 6, 12]
    thr = sample_weights(ds, oversample_thr=0.5)  # r(c) = max(1, sqrt(0.5 / f(c)))
    assert thr[:2].tolist() == pytest.approx([math.sqrt(5)] * 2)
    assert thr[2:8].tolist() == pytest.approx([math.sqrt(0.5 / 0.3)] * 6)
    assert thr[8:].tolist() == [1.0] * 12
    inverse = sample_weights(ds, oversample_thr=None)  # 1 / f(c): each class drawn equally often
    assert [inverse[i].item() for i in (0, 2, 8)] == pytest.approx([10, 20 / 6, 20 / 12])
    labels = torch.tensor(list(ds["label"]))
    assert [inverse[labels == c].sum().item() for c in range(3)] == pytest.approx([20, 20, 20])


def test_a_multi_label_image_takes_its_rarest_class():
    ds = labelled([[0, 1], [1], [1, 2], [], [1]])  # f = 0.2, 0.8, 0.2
    weights = sample_weights(ds, oversample_thr=None)
    assert weights.tolist() == pytest.approx([5, 1.25, 5, 1, 1.25])  # an image without classes: 1
    assert class_counts(ds).tolist() == [1, 4, 1]


def test_each_epoch_draws_from_the_seed_and_the_epoch_alone():
    weights = torch.tensor([1.0] * 90 + [81.0] * 10)  # 10 rare rows, 81 times as likely each
    first = balanced_rows(weights, seed=3, epoch=0)
    assert len(first) == 100 and torch.equal(first, balanced_rows(weights, seed=3, epoch=0))
    assert not torch.equal(first, balanced_rows(weights, seed=3, epoch=1))
    assert not torch.equal(first, balanced_rows(weights, seed=4, epoch=0))
    draws = torch.cat([balanced_rows(weights, seed=0, epoch=e) for e in range(50)])
    assert (draws >= 90).float().mean().item() == pytest.approx(0.9, abs=0.02)  # 810 / 900 of the weight


@pytest.fixture
def imbalanced(tmp_path):
    """cat 2, dog 8, fox 14 training images (a recipe with data.sampler: class_balanced)."""
    train = tmp_path / "train"
    for name, count in (("cat", 2), ("dog", 8), ("fox", 14)):
        make_image_folder(train, per_class=count, classes={name: (40 * len(name), 90, 200)})
    val = make_image_folder(tmp_path / "val", per_class=2)
    pipeline = [{"type": "Resize", "size": [12, 12]}, {"type": "RandomCrop", "size": 12, "padding": 2}]
    return write_recipe(
        tmp_path / "r.yaml",
        tiny_recipe_dict(train, val, data={"sampler": "class_balanced", "batch_size": 4, "train_pipeline": pipeline}),
    )


def epoch_batches(loader, epoch):
    loader.set_epoch(epoch)
    return [(b["labels"].tolist(), b["pixel_values"].float().mean(dim=(1, 2, 3)).tolist()) for b in loader]


@pytest.mark.parametrize("in_memory", [False, True], ids=["workers", "in-memory"])
def test_balanced_training_loader_evens_the_classes_and_resumes_exactly(imbalanced, in_memory):
    recipe = load_recipe(imbalanced, [f"data.in_memory={in_memory}"])
    train = build_datasets(recipe.data, recipe.seed, ("train",))["train"]
    with accelerator_session(recipe) as accelerator:
        loader = build_train_loader(recipe, train, accelerator)
        epochs = [epoch_batches(loader, e) for e in range(8)]
        labels = torch.tensor([label for epoch in epochs for labels, _ in epoch for label in labels])
        # Without balancing: 2 / 24 cats. With it each class a third of the draws, in expectation.
        assert torch.bincount(labels, minlength=3).tolist() == pytest.approx([8 * 24 / 3] * 3, abs=18)
        assert epochs[0] != epochs[1]
        # A resume after two batches of epoch 5 continues with the very same batches.
        loader.set_epoch(5)
        loader.load_state_dict({"batches": 2})
        assert epoch_batches(loader, 5) == epochs[5][2:]


def test_in_memory_process_shards_split_one_draw():
    images = torch.arange(24, dtype=torch.uint8).view(24, 1, 1, 1).expand(24, 3, 2, 2).contiguous()
    labels = torch.tensor([0] * 2 + [1] * 22)
    weights = sample_weights(labelled(labels.tolist(), ("a", "b")), None)
    one = InMemoryLoader(images, labels, 4, shuffle=True, seed=1, weights=weights)
    shards = [
        InMemoryLoader(images, labels, 2, shuffle=True, seed=1, weights=weights, process_index=r, num_processes=2)
        for r in range(2)
    ]
    for loader in (one, *shards):
        loader.set_epoch(2)
    alone = [b["pixel_values"][:, 0, 0, 0].tolist() for b in one]
    together = [[b["pixel_values"][:, 0, 0, 0].tolist() for b in shard] for shard in shards]
    assert alone == [a + b for a, b in zip(*together)]  # the two processes' batches make one global batch
    drawn = [row for batch in alone for row in batch]
    assert sum(row < 2 for row in drawn) > 4  # the 2 rare images are drawn far above their 2 / 24


def test_a_stream_cannot_be_balanced(tmp_path):
    from layouts import save_numbered

    save_numbered(tmp_path / "saved", count=8, shards=2)
    recipe = recipe_from_dict(
        tiny_recipe_dict(
            None,
            make_image_folder(tmp_path / "val", per_class=1),
            data={
                "train": {"type": "disk", "path": str(tmp_path / "saved"), "streaming": True},
                "steps_per_epoch": 2,
                "sampler": "class_balanced",
            },
        )
    )
    train = build_datasets(recipe.data, recipe.seed, ("train",))["train"]
    with accelerator_session(recipe) as accelerator:
        with pytest.raises(HfclsError, match="cannot give up front"):
            build_train_loader(recipe, train, accelerator)


def test_oversample_thr_needs_the_sampler(tiny_data):
    with pytest.raises(HfclsError, match="data.oversample_thr is a fraction of images in .0, 1. used by data.sampler"):
        recipe_from_dict(tiny_recipe_dict(*tiny_data, data={"oversample_thr": 0.1}))
