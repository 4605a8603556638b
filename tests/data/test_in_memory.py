"""In-memory mode: batch-wise transforms equal torchvision's, sharding, epochs, resume, training."""

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from hfcls.api import train
from hfcls.data.in_memory import InMemoryLoader, RandomCrop, RandomFlip, split_pipeline
from hfcls.data.mixing import build_mixer
from hfcls.errors import HfclsError
from hfcls.recipe import load_recipe

from conftest import REPO


def numbered_images(count=10, size=6):
    """uint8 images whose pixels say which image they are (pixel 0 = image index)."""
    images = torch.randint(
        0, 256, (count, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    images[:, 0, 0, 0] = torch.arange(count, dtype=torch.uint8)
    return images


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_batch_crop_equals_torchvision_pad_then_crop(mode):
    images = numbered_images(count=5, size=8)
    crop = RandomCrop(v2.RandomCrop(6, padding=[3, 1, 2, 4], padding_mode=mode, fill=7), "t")
    params = crop.draw(5, 8, 8, torch.Generator().manual_seed(1))
    out = crop(images, params)
    assert out.shape == (5, 3, 6, 6) and out.dtype == torch.uint8 and out.is_contiguous()
    for i in range(5):
        padded = F.pad(images[i], [3, 1, 2, 4], fill=7, padding_mode=mode)
        expected = F.crop(padded, int(params["top"][i]), int(params["left"][i]), 6, 6)
        assert torch.equal(out[i], expected), (mode, i)
    # Every window the padded image allows is drawn, none outside it.
    many = crop.draw(2000, 8, 8, torch.Generator().manual_seed(2))
    assert many["top"].min() == 0 and many["top"].max() == 8 + 1 + 4 - 6
    assert many["left"].min() == 0 and many["left"].max() == 8 + 3 + 2 - 6


def test_batch_flip_flips_exactly_the_drawn_images():
    images = numbered_images(count=6)
    flip = RandomFlip(v2.RandomHorizontalFlip(p=0.5), dim=-1)
    params = {"flip": torch.tensor([True, False, True, False, False, True])}
    out = flip(images, params)
    for i, flipped in enumerate(params["flip"].tolist()):
        assert torch.equal(out[i], images[i].flip(-1) if flipped else images[i])


def test_split_pipeline_keeps_the_static_head_and_rejects_the_rest():
    head, batchwise = split_pipeline(
        [{"type": "Resize", "size": 36}, {"type": "RandomCrop", "size": 32}, {"type": "RandomHorizontalFlip"}],
        "data.train_pipeline",
    )
    assert [type(t).__name__ for t in head] == ["Resize"]
    assert [type(t).__name__ for t in batchwise] == ["RandomCrop", "RandomFlip"]
    with pytest.raises(HfclsError, match=r"data.train_pipeline\[1\]: RandomResizedCrop cannot run with data.in_memory"):
        split_pipeline(
            [{"type": "Resize", "size": 36}, {"type": "RandomResizedCrop", "size": 32}], "data.train_pipeline"
        )
    with pytest.raises(HfclsError, match=r"\[1\]: Resize cannot run"):  # static after random: order matters
        split_pipeline([{"type": "RandomHorizontalFlip"}, {"type": "Resize", "size": 8}], "data.train_pipeline")


def batches(loader, epoch):
    loader.set_epoch(epoch)
    return [(b["pixel_values"][:, 0, 0, 0].tolist(), b["labels"].tolist(), b["valid"].tolist()) for b in loader]


def test_training_shards_cover_each_epoch_once_and_replay_from_the_seed():
    images, labels = numbered_images(count=23), torch.arange(23) % 4
    shards = [
        InMemoryLoader(images, labels, 3, shuffle=True, seed=5, process_index=rank, num_processes=2)
        for rank in range(2)
    ]
    assert [len(s) for s in shards] == [3, 3]  # 23 // (3 x 2): the incomplete global batch is dropped
    epoch0 = [batches(s, 0) for s in shards]
    seen = [i for shard in epoch0 for ids, _, _ in shard for i in ids]
    assert len(seen) == len(set(seen)) == 18
    for shard in epoch0:
        for ids, labs, valid in shard:
            assert labs == [i % 4 for i in ids] and all(valid)
    assert epoch0 == [batches(s, 0) for s in shards]  # same seed + epoch: the same batches
    assert epoch0 != [batches(s, 1) for s in shards]  # a new order every epoch
    one = InMemoryLoader(images, labels, 6, shuffle=True, seed=5)  # one process, same global batch
    assert [i for ids, _, _ in batches(one, 0) for i in ids] == [
        i for step in zip(*epoch0) for ids, _, _ in step for i in ids
    ]


def test_a_loaded_state_resumes_the_same_order_and_augmentation():
    images, labels = numbered_images(count=20, size=8), torch.zeros(20, dtype=torch.long)
    crop = RandomCrop(v2.RandomCrop(6, padding=2), "t")
    loader = InMemoryLoader(images, labels, 4, shuffle=True, seed=0, transforms=[crop])
    loader.set_epoch(3)
    passing = iter(loader)
    full = [next(passing)["pixel_values"] for _ in range(2)]
    state = loader.state_dict()
    assert state == {"batches": 2}  # where the epoch stands, as JSON-able values
    full += [b["pixel_values"] for b in passing]
    loader.set_epoch(3)
    loader.load_state_dict(state)
    resumed = [b["pixel_values"] for b in loader]
    assert len(resumed) == 3 and all(torch.equal(a, b) for a, b in zip(full[2:], resumed))
    assert len([b for b in loader]) == 5  # the skip holds for one pass only


def test_mixing_on_device_batches_replays_after_a_mid_epoch_resume():
    images, labels = numbered_images(count=20, size=8), torch.arange(20) % 4
    mix = build_mixer(4, mixup_alpha=0.4, cutmix_alpha=1.0)
    loader = InMemoryLoader(images, labels, 4, shuffle=True, seed=0, mix=mix)
    loader.set_epoch(1)
    full = list(loader)
    for batch in full:
        assert batch["pixel_values"].dtype == torch.float32 and batch["labels"].shape == (4, 4)
        assert torch.allclose(batch["labels"].sum(dim=1), torch.ones(4))
    assert any(((b["labels"] > 0) & (b["labels"] < 1)).any() for b in full)  # really mixed
    loader.set_epoch(1)
    loader.load_state_dict({"batches": 3})
    resumed = list(loader)
    for a, b in zip(full[3:], resumed):
        assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["labels"], b["labels"])
    loader.set_epoch(2)
    assert not torch.equal(next(iter(loader))["labels"], full[0]["labels"])


def test_evaluation_shards_pad_with_invalid_repeats():
    images, labels = numbered_images(count=7), torch.arange(7)
    shards = [
        InMemoryLoader(images, labels, 2, shuffle=False, seed=0, process_index=r, num_processes=2) for r in range(2)
    ]
    assert [len(s) for s in shards] == [2, 2]
    rows = [(i, ok) for s in shards for ids, _, valid in batches(s, 0) for i, ok in zip(ids, valid)]
    assert sorted(i for i, ok in rows if ok) == list(range(7))
    assert [i for i, ok in rows if not ok] == [0]


def test_no_full_batch_is_an_error():
    with pytest.raises(HfclsError, match="no full batch of 8 x 2 processes"):
        InMemoryLoader(numbered_images(count=10), torch.zeros(10), 8, shuffle=True, seed=0, num_processes=2)


def test_images_of_different_sizes_are_an_error(tmp_path):
    from PIL import Image

    folder = tmp_path / "mixed"
    for name, size in (("a", (8, 8)), ("b", (9, 8))):
        (folder / name).mkdir(parents=True)
        Image.new("RGB", size).save(folder / name / "0.png")
    recipe = load_recipe(
        REPO / "recipes/digits/resnet-tiny_1xb64_digits.yaml",
        [
            f"data.train.path={folder}",
            f"data.val.path={folder}",
            "data.in_memory=true",
            "data.num_workers=0",
            "data.train_pipeline=[]",
            "data.batch_size=1",
            f"work_dir={tmp_path / 'work'}",
        ],
    )
    with pytest.raises(HfclsError, match=r"data.train: data.in_memory needs every image the same size"):
        train(recipe, recipe.work_dir)


def test_gradient_accumulation_steps_on_each_epochs_last_batch(tmp_path, tiny_data):
    """3 batches an epoch, accumulating 2: the optimizer steps after batches 2 and 3."""
    from hfcls.logs import read_jsonl

    from conftest import tiny_recipe_dict, write_recipe

    recipe = tiny_recipe_dict(
        *tiny_data,
        data={"in_memory": True, "train_pipeline": [{"type": "RandomCrop", "size": 16}]},
        train={"epochs": 2, "gradient_accumulation_steps": 2},
    )
    path = write_recipe(tmp_path / "r.yaml", recipe)
    train(load_recipe(path), tmp_path / "work")
    assert [row["step"] for row in read_jsonl(tmp_path / "work" / "metrics.jsonl")] == [2, 4]


def test_evaluation_predictions_hold_each_image_once(tmp_path, tiny_data):
    """12 val images in batches of 5: the padded last batch's repeats are dropped when gathered."""
    from hfcls.data.build import build_datasets, build_eval_loader
    from hfcls.engine.setup import accelerator_session
    from hfcls.models import build_model
    from hfcls.predict.forward import predict
    from hfcls.predict.inputs import recipe_inputs
    from hfcls.recipe import load_recipe

    from conftest import tiny_recipe_dict, write_recipe

    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data, data={"in_memory": True})))
    val = build_datasets(recipe.data, recipe.seed, ("val",))["val"]
    with accelerator_session(recipe) as accelerator:
        loader = build_eval_loader(recipe.data, val, accelerator, recipe.seed, batch_size=5)
        model = build_model(recipe.model, ["cat", "dog", "fox"])
        got = predict(model, loader, recipe_inputs(recipe, accelerator.device), accelerator=accelerator)
    assert len(loader) == 3 and got.logits.shape == (12, 3) and bool(got.valid.all())
    assert got.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
