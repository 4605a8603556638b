"""Batches read through DataLoader workers, sharded over processes by Accelerate.

Training reads `SeededSamples` (each sample augmented under its own seed) in
the order of Accelerate's seedable sampler, so a run replays exactly; a resume
in the middle of an epoch skips the batches already trained on without loading
them (`accelerate.skip_first_batches`). Evaluation reads the split in order;
Accelerate evens out the last batches and `gather_for_metrics` drops the repeats.
"""

from __future__ import annotations

import torch
from accelerate import skip_first_batches


class WorkerLoader:
    """The loader protocol (hfcls.data.build) over an Accelerate-prepared DataLoader."""

    def __init__(self, prepared, samples=None, finish=None):
        self.prepared = prepared
        self.samples = samples  # SeededSamples of a training split: told the epoch too
        self.finish = finish  # work on each batch in this process (hfcls.data.on_device decodes there)
        self._start = 0  # batches to skip on the next pass (a resume)
        self._yielded = 0

    def __len__(self) -> int:
        return len(self.prepared)

    def set_epoch(self, epoch: int) -> None:
        self.prepared.set_epoch(epoch)
        if self.samples is not None:
            self.samples.set_epoch(epoch)

    def set_resolution(self, side: int | None) -> None:
        """The training crop's side from the next batch on (data.progressive_resizing); None: the pipeline's."""
        if self.samples is not None:
            self.samples.set_resolution(side)

    def state_dict(self) -> dict:
        return {"batches": self._yielded}

    def load_state_dict(self, state: dict) -> None:
        self._start = int(state.get("batches", 0))

    def __iter__(self):
        start, self._start = self._start, 0
        self._yielded = start
        for batch in skip_first_batches(self.prepared, start) if start else self.prepared:
            self._yielded += 1
            yield batch if self.finish is None else self.finish(batch)


def data_loader(
    dataset, data, batch_size: int, shuffle: bool, seed: int, pin_memory: bool, collate_fn, worker_init_fn, workers: int
) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        collate_fn=collate_fn,
        pin_memory=pin_memory,
        drop_last=shuffle,  # training only: a size-1 last batch breaks BatchNorm
        prefetch_factor=data.prefetch_factor if workers > 0 else None,
        persistent_workers=data.persistent_workers and workers > 0,
        worker_init_fn=worker_init_fn,  # workers' augmentations differ between ranks
        generator=torch.Generator().manual_seed(seed),
    )
