"""Augmentation randomness as a function of (seed, epoch, sample index).

Each training sample is transformed under its own seed, so its augmentation
does not depend on which worker loads it, on how many workers there are, or on
which batches came before. That is what makes a resume in the middle of an
epoch exact: Accelerate skips the batches already trained on without loading
them, and prefetching (by workers or by Accelerate itself) consumes nothing
from the global RNG that the model's own randomness (dropout) uses.

Class-balanced sampling (`data.sampler: class_balanced`) is a function of
(seed, epoch) too: each epoch's drawn rows (`balanced_rows`) are the same on
every process and after a resume, so sharding and mid-epoch resume stay exact.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

_MASK = (1 << 63) - 1


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return ((seed * 1_000_003 + epoch) * 1_000_000_007 + index) & _MASK


def balanced_rows(weights: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """The rows of one class-balanced epoch: as many as there are rows, drawn with replacement
    in proportion to `weights` (hfcls.data.balance), under a generator seeded by (seed, epoch)."""
    generator = torch.Generator().manual_seed(sample_seed(seed, epoch, -1))  # -1: the seed of no sample
    return torch.multinomial(weights, len(weights), replacement=True, generator=generator)


class SeededSamples(torch.utils.data.Dataset):
    """Wrap a `datasets.Dataset` whose transform (`attach_transforms`) decodes and augments
    rows: item i of epoch e is produced under `sample_seed(seed, e, i)`.

    A DataLoader batch is read from Arrow in one call (`__getitems__`), then
    each row is transformed under its own seed. The epoch lives in shared
    memory, so persistent DataLoader workers see `set_epoch` from the main process.
    With class-balance `weights`, item i of epoch e is row `balanced_rows(...)[i]`:
    a row drawn twice is augmented twice, differently.
    """

    def __init__(self, dataset, seed: int, weights: torch.Tensor | None = None):
        self.transform = dataset.format["format_kwargs"]["transform"]
        self.rows = dataset.with_format(None)  # the same rows, untransformed
        self.seed = seed
        self.weights = weights
        self._drawn = (None, None)  # (epoch, its balanced rows), drawn once per epoch and process
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        # The training crop's side (data.progressive_resizing), 0 for the pipeline's own; shared like
        # the epoch, and handed to this process's copy of the transform when it changes.
        self._side = torch.zeros((), dtype=torch.int64).share_memory_()
        self._side_set = 0

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    def set_resolution(self, side: int | None) -> None:
        self._side.fill_(side or 0)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list) -> list:
        epoch, side = int(self._epoch), int(self._side)
        if side != self._side_set:
            self.transform.set_size(side or None)
            self._side_set = side
        rows = self.rows[self._row_numbers(list(indices), epoch)]  # one Arrow read: {column: values}
        samples = []
        with torch.random.fork_rng(devices=[]):
            for j, index in enumerate(indices):
                seed = sample_seed(self.seed, epoch, int(index))
                _seed_cpu(seed)
                one = self.transform({column: values[j : j + 1] for column, values in rows.items()})
                samples.append({**{key: values[0] for key, values in one.items()}, "seed": seed})
        return samples

    def _row_numbers(self, indices: list, epoch: int) -> list:
        if self.weights is None:
            return indices
        if self._drawn[0] != epoch:
            self._drawn = (epoch, balanced_rows(self.weights, self.seed, epoch))
        return self._drawn[1][indices].tolist()


def _seed_cpu(seed: int) -> None:
    # Transforms draw from the CPU generator only. torch.manual_seed would also
    # reseed every accelerator's generators, at ~0.25 ms a call (a CUDA build).
    torch.default_generator.manual_seed(seed)


def seeded(fn, seed: int, *args):
    """fn(*args) with the CPU generator seeded by `seed`, leaving it as it was."""
    with torch.random.fork_rng(devices=[]):
        _seed_cpu(seed)
        return fn(*args)


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: mix this process's rank into the worker's seeds.

    PyTorch derives worker seeds from the loader's generator, which the recipe's
    seed makes identical on every process: without the rank, worker i of every
    process would draw the same augmentations.
    """
    rank = int(os.environ.get("RANK", "0"))
    seed = int(np.random.SeedSequence([torch.initial_seed(), rank]).generate_state(1, np.uint64)[0])
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
