"""Training from a stream (`streaming: true`): data larger than one machine's disk.

A `datasets.IterableDataset` has no length, so the recipe sets
`data.steps_per_epoch`. Each process reads its own part of the stream
(`split_dataset_by_node`: whole shards when their count divides evenly, else
every n-th example), shuffled through a buffer of `data.shuffle_buffer` rows
with the recipe's seed, reshuffled each epoch. Every process runs exactly
`steps_per_epoch` steps, starting the stream over when its part runs out, so no
process waits on another at the end of an epoch.
"""

from __future__ import annotations

import datasets
import torch
from datasets.distributed import split_dataset_by_node

from hfcls.errors import HfclsError


class TransformedStream(torch.utils.data.IterableDataset):
    """The rows of a `datasets.IterableDataset` through a per-sample transform.

    DataLoader workers each read different shards: datasets splits the shards
    between workers when it is iterated inside one.
    """

    def __init__(self, ds: datasets.IterableDataset, transform):
        self.ds = ds
        self.transform = transform

    @property
    def features(self):
        return self.ds.features

    def for_process(self, seed: int, buffer_size: int, rank: int, world_size: int) -> "TransformedStream":
        """This process's shuffled part of the stream (the same seed on every process,
        so that they agree on the shard order and so on which shards each one reads)."""
        shuffled = self.ds.shuffle(seed=seed, buffer_size=buffer_size)
        return TransformedStream(split_dataset_by_node(shuffled, rank=rank, world_size=world_size), self.transform)

    def set_epoch(self, epoch: int) -> None:
        self.ds.set_epoch(epoch)

    def __iter__(self):
        for row in self.ds:
            sample = self.transform({"image": [row["image"]], "label": [row["label"]]})
            yield {key: values[0] for key, values in sample.items()}


class StreamLoader:
    """`steps` batches per epoch from a `TransformedStream`, on `device`.

    Not a DataLoader, so `Accelerator.prepare` passes it through unchanged: the
    stream is already split between processes and must not be split again.
    """

    def __init__(self, stream: TransformedStream, loader_kwargs: dict, steps: int, device):
        self.stream = stream
        self.loader = torch.utils.data.DataLoader(stream, **loader_kwargs)
        self.steps = steps
        self.device = device
        self.epoch = 0

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        produced, restarts = 0, 0
        while produced < self.steps:
            # A new pass over the stream each time the last one runs out, each
            # shuffled differently but the same way on every run of the recipe.
            self.stream.set_epoch(self.epoch * self.steps + restarts)
            empty = True
            for batch in self.loader:
                empty = False
                yield to_device(batch, self.device)
                produced += 1
                if produced == self.steps:
                    return
            if empty:
                raise HfclsError("the streaming train source gave this process no samples; it needs at least "
                                 "one sample per process and per DataLoader worker")
            restarts += 1


def to_device(batch: dict, device) -> dict:
    return {key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for key, value in batch.items()}



def build_stream_loader(stream: TransformedStream, data, loader_kwargs: dict, seed: int, process) -> StreamLoader:
    """`process` = (rank, number of processes, device) of the process that reads this loader."""
    if data.steps_per_epoch is None:
        raise HfclsError("data.train streams (streaming: true) and a stream has no length: "
                         "set data.steps_per_epoch")
    rank, world_size, device = process
    part = stream.for_process(seed, data.shuffle_buffer, rank, world_size)
    return StreamLoader(part, loader_kwargs, data.steps_per_epoch, device)
