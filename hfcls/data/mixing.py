"""MixUp / CutMix in the collate function (torchvision v2), `train.mixup_alpha` / `cutmix_alpha`.

Mixed batches carry float images (still on the 0-255 scale, which `Normalize`
accepts) and soft labels of shape (batch, classes). With both alphas set, each
batch gets one of the two at random, as timm does. Samples come from
`hfcls.data.seeding.SeededSamples`, whose per-sample seed also seeds the mixing; the
in-memory and on-device loaders apply the same mixer (`mix_batch`) to their batches on the device.
"""

from __future__ import annotations

from torchvision.transforms import v2

from hfcls.data.seeding import seeded


def build_mixer(num_classes: int, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0):
    """The v2 MixUp / CutMix (one of the two at random when both are on) for
    (float images, labels) batches, or None when neither is asked for."""
    mixers = []
    if mixup_alpha > 0:
        mixers.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
    if cutmix_alpha > 0:
        mixers.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)


class MixingCollate:
    """Collate a batch, then mix it with `mix` (from `build_mixer`)."""

    def __init__(self, collate, mix):
        self.collate, self.mix = collate, mix

    def __call__(self, samples: list) -> dict:
        batch = self.collate(samples)
        # Seeded by the batch's first sample (see hfcls.data.seeding): replays exactly on resume.
        batch["pixel_values"], batch["labels"] = mix_batch(
            self.mix, samples[0]["seed"], batch["pixel_values"], batch["labels"]
        )
        return batch


def mix_batch(mix, seed: int, images, labels):
    """(float images, soft labels): `mix` applied under `seed`, wherever the batch is (worker, device)."""
    return seeded(mix, seed, images.float(), labels)  # MixUp blends pixels: uint8 would truncate


def mixing_collate(collate, mix):
    """`collate` itself when `mix` (from build_mixer) is None: neither MixUp nor CutMix."""
    return collate if mix is None else MixingCollate(collate, mix)
