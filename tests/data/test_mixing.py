"""MixUp / CutMix: blended images and soft labels, seeded by the samples, fed to training by every loader kind."""

import pytest
import torch

from hfcls.data.mixing import MixingCollate, build_mixer, mixing_collate
from hfcls.engine.steps import train_step
from hfcls.recipe import load_recipe

from conftest import built_run, tiny_recipe_dict, write_recipe


def samples(n=4, size=8, seed=7):
    generator = torch.Generator().manual_seed(0)
    return [
        {
            "pixel_values": torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator),
            "labels": i % 3,
            "valid": True,
            "file": f"{i}.png",
            "seed": seed,
        }
        for i in range(n)
    ]


def plain_collate(items):
    return {
        "pixel_values": torch.stack([s["pixel_values"] for s in items]),
        "labels": torch.tensor([s["labels"] for s in items]),
        "valid": torch.tensor([s["valid"] for s in items]),
    }


def test_mixup_blends_images_and_labels():
    items = samples()
    batch = MixingCollate(plain_collate, build_mixer(3, mixup_alpha=0.4))(items)
    images, labels = plain_collate(items)["pixel_values"].float(), batch["labels"]
    assert labels.shape == (4, 3) and torch.allclose(labels.sum(dim=1), torch.ones(4))
    # Sample 1 (class 1) is blended with sample 0 (class 0), the batch rolled by one.
    lam = labels[1, 1].item()
    assert 0 < lam < 1 and labels[1, 0].item() == pytest.approx(1 - lam)
    assert torch.allclose(batch["pixel_values"][1], lam * images[1] + (1 - lam) * images[0], atol=1e-3)
    # Seeded by the samples: the same batch mixes the same way again; another seed differently.
    assert torch.equal(MixingCollate(plain_collate, build_mixer(3, mixup_alpha=0.4))(items)["labels"], labels)
    assert not torch.equal(
        MixingCollate(plain_collate, build_mixer(3, mixup_alpha=0.4))(samples(seed=8))["labels"], labels
    )


def test_cutmix_pastes_a_box():
    items = samples()
    batch = MixingCollate(plain_collate, build_mixer(3, cutmix_alpha=1.0))(items)
    images = plain_collate(items)["pixel_values"].float()
    pasted = batch["pixel_values"][1] != images[1]
    assert torch.equal(batch["pixel_values"][1][pasted], images[0][pasted])  # from the rolled batch
    area = pasted.any(dim=0).float().mean().item()
    assert batch["labels"][1, 0].item() == pytest.approx(area, abs=1e-6)  # label weight = pasted area


def test_no_alpha_no_mixer_and_the_plain_collate():
    assert build_mixer(3) is None
    assert mixing_collate(plain_collate, None) is plain_collate


@pytest.mark.parametrize("in_memory", [False, True], ids=["workers", "in-memory"])
def test_mixup_in_training_feeds_soft_labels(tmp_path, tiny_data, in_memory):
    data = (
        {"in_memory": True, "train_pipeline": [{"type": "RandomCrop", "size": 16, "padding": 2}]} if in_memory else {}
    )
    recipe = load_recipe(
        write_recipe(
            tmp_path / "r.yaml",
            tiny_recipe_dict(*tiny_data, data=data, train={"mixup_alpha": 0.4, "cutmix_alpha": 1.0, "log_with": []}),
        )
    )
    seen = []
    with built_run(recipe, tmp_path / "w", validate=False) as run:
        run.train_loader.set_epoch(0)
        run.model.train()
        for batch in run.train_loader:
            seen.append(batch["labels"])
            loss = train_step(run, batch)  # the labels the loss is computed on
            assert loss is not None and torch.isfinite(loss)
    assert len(seen) == 3 and all(labels.shape == (8, 3) and labels.dtype == torch.float32 for labels in seen)
    assert all(((labels > 0) & (labels < 1)).any() for labels in seen)


def multi_hot_samples():
    targets = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    return [{**s, "labels": torch.tensor(t)} for s, t in zip(samples(), targets)]


def multi_hot_collate(items):
    return {
        "pixel_values": torch.stack([s["pixel_values"] for s in items]),
        "labels": torch.stack([s["labels"] for s in items]),
    }


def test_mixup_and_cutmix_mix_multi_hot_targets():
    """Each mixed image's target is the same blend of its two images' multi-hot vectors (not one-hot)."""
    items = multi_hot_samples()
    images, targets = multi_hot_collate(items)["pixel_values"].float(), multi_hot_collate(items)["labels"]
    mixed = MixingCollate(multi_hot_collate, build_mixer(3, mixup_alpha=0.4))(items)
    # lam from the pixels of image 1 = lam * image 1 + (1 - lam) * image 0, then every target follows it.
    a, b = images[1].flatten(), images[0].flatten()
    lam = torch.dot(mixed["pixel_values"][1].flatten() - b, a - b) / torch.dot(a - b, a - b)
    assert 0 < lam < 1
    assert torch.allclose(mixed["labels"], lam * targets + (1 - lam) * targets.roll(1, 0), atol=1e-4)
    cut = MixingCollate(multi_hot_collate, build_mixer(3, cutmix_alpha=1.0))(items)
    area = (cut["pixel_values"][1] != images[1]).any(dim=0).float().mean()
    assert torch.allclose(cut["labels"], (1 - area) * targets + area * targets.roll(1, 0), atol=1e-6)
