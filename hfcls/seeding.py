"""Augmentation randomness as a function of (seed, epoch, sample index).

Each training sample is transformed under its own seed, so its augmentation
does not depend on which worker loads it, on how many workers there are, or on
which batches came before. That is what makes a resume in the middle of an
epoch exact: Accelerate skips the batches already trained on without loading
them, and prefetching (by workers or by Accelerate itself) consumes nothing
from the global RNG that the model's own randomness (dropout) uses.
"""

from __future__ import annotations

import torch

_MASK = (1 << 63) - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return ((seed * 1_000_003 + epoch) * 1_000_000_007 + index) & _MASK


class SeededSamples(torch.utils.data.Dataset):
    """Wrap a dataset: item i of epoch e is produced under `sample_seed(seed, e, i)`.

    The epoch lives in shared memory, so persistent DataLoader workers see
    `set_epoch` from the main process.
    """

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed = dataset, seed
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        seed = sample_seed(self.seed, int(self._epoch), int(index))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            sample = self.dataset[index]
        return {**sample, "seed": seed}


def seeded(fn, seed: int, *args):
    """fn(*args) under `seed`, leaving the global RNG as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn(*args)
