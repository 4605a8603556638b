"""Training from a stream (`streaming: true`): data larger than one machine's disk.

A `datasets.IterableDataset` has no length, so the recipe sets
`data.steps_per_epoch`. Each process reads its own part of the stream
(`split_dataset_by_node`: whole shards when their count divides evenly, else
every n-th example), shuffled through a buffer of `data.shuffle_buffer` rows
with the recipe's seed, reshuffled each epoch. Every process runs exactly
`steps_per_epoch` steps, starting the stream over when its part runs out (a
new pass), so no process waits on another at the end of an epoch.

Exact resume. Each DataLoader worker reads the shards datasets gives it and
builds whole batches; the loader hands them on in a fixed round-robin order
of the workers, whatever order they arrive in, so the sequence of batches is
a function of the seed and epoch alone. Its state is where each worker is in
its part of the pass (rows read) and whose turn is next; a resumed loader
makes each worker skip the rows it had already delivered, without decoding
them, and carries on with the next batch. datasets' own `state_dict` refills
its shuffle buffer on resume and so drops the rows it held: not used.
"""

from __future__ import annotations

from collections import defaultdict, deque

import datasets
import torch
from datasets.distributed import split_dataset_by_node

from hfcls.data.decode import collate
from hfcls.errors import HfclsError


class TransformedStream(torch.utils.data.IterableDataset):
    """Batches of a `datasets.IterableDataset`'s rows through a per-sample transform.

    In a DataLoader worker it reads that worker's shards (datasets splits them)
    and yields `{"batch", "worker", "rows"}` items, `rows` being how many rows
    this worker has read in this pass, then `{"end": worker}`. A last partial
    batch is dropped, as training DataLoaders drop theirs.
    """

    def __init__(self, ds: datasets.IterableDataset, transform, batch_size: int = 1):
        self.ds, self.transform, self.batch_size = ds, transform, batch_size
        self.skip_rows: dict = {}  # worker -> rows to skip (already trained on) in this pass

    @property
    def features(self):
        return self.ds.features

    def for_process(
        self, seed: int, buffer_size: int, rank: int, world_size: int, batch_size: int
    ) -> TransformedStream:
        """This process's shuffled part of the stream (the same seed on every process,
        so that they agree on the shard order and so on which shards each one reads)."""
        shuffled = self.ds.shuffle(seed=seed, buffer_size=buffer_size)
        return TransformedStream(
            split_dataset_by_node(shuffled, rank=rank, world_size=world_size), self.transform, batch_size
        )

    def set_epoch(self, epoch: int) -> None:
        self.ds.set_epoch(epoch)

    def samples(self):
        """One transformed sample per row, in stream order (hfcls-browse, hfcls-verify)."""
        for row in self.ds:
            yield self._one(row)

    def _one(self, row: dict) -> dict:
        sample = self.transform({column: [value] for column, value in row.items()})
        return {key: values[0] for key, values in sample.items()}

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker = info.id if info is not None else 0
        skip, rows, samples = self.skip_rows.get(worker, 0), 0, []
        for row in self.ds:
            rows += 1
            if rows <= skip:  # delivered before the checkpoint: not decoded again
                continue
            samples.append(self._one(row))
            if len(samples) == self.batch_size:
                yield {"batch": collate(samples), "worker": worker, "rows": rows}
                samples = []
        yield {"end": worker}


class StreamLoader:
    """The loader protocol (hfcls.data.build) for a stream: `steps` batches per epoch, on `device`.

    Not a DataLoader, so `Accelerator.prepare` never sees it: the stream is
    already split between processes and must not be split again.
    """

    def __init__(self, stream: TransformedStream, loader_kwargs: dict, steps: int, device):
        self.stream, self.steps, self.device = stream, steps, device
        self.workers = max(1, loader_kwargs["num_workers"])
        # Workers start afresh each pass, so that they see the pass's epoch and skips.
        self.loader = torch.utils.data.DataLoader(stream, batch_size=None, **loader_kwargs)
        self.epoch = 0
        self.position = self._start_of_pass(0)
        self._resume = None

    def __len__(self) -> int:
        return self.steps

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_resolution(self, side: int | None) -> None:
        # Workers start afresh each pass, with the transform as this process holds it.
        self.stream.transform.set_size(side)

    def state_dict(self) -> dict:
        return {**self.position, "rows": dict(self.position["rows"]), "workers": self.workers}

    def load_state_dict(self, state: dict) -> None:
        if state and state.get("workers") != self.workers:
            raise HfclsError(
                f"the checkpoint's stream was read by {state.get('workers')} DataLoader worker(s), this "
                f"run has {self.workers}; resume with the same data.num_workers (a stream's order "
                "depends on how its shards are split between workers)"
            )
        self._resume = state or None

    def __iter__(self):
        position = self._resume or self._start_of_pass(0)
        position["rows"] = {int(worker): rows for worker, rows in position["rows"].items()}
        self._resume, self.position = None, position
        while position["batches"] < self.steps:
            # Each pass is shuffled differently, the same way on every run of the recipe.
            self.stream.set_epoch(self.epoch * self.steps + position["pass"])
            self.stream.skip_rows = dict(position["rows"])
            delivered = position["batches"]
            for batch in in_turn(iter(self.loader), position, self.workers):
                yield {
                    key: value.to(self.device, non_blocking=True) if isinstance(value, torch.Tensor) else value
                    for key, value in batch.items()
                }
                if position["batches"] == self.steps:
                    return
            if position["batches"] == delivered and not position["rows"]:
                raise HfclsError(
                    "the streaming train source gave this process no full batch; it needs at least "
                    "data.batch_size samples per process and per DataLoader worker"
                )
            position.update(self._start_of_pass(position["pass"] + 1), batches=position["batches"])

    @staticmethod
    def _start_of_pass(number: int) -> dict:
        return {"batches": 0, "pass": number, "rows": {}, "next": 0, "ended": []}


def in_turn(items, position: dict, workers: int):
    """The workers' batches in round-robin order from `position["next"]`, skipping workers
    that ran out; `position` is brought up to date before each batch is handed on."""
    waiting = defaultdict(deque)
    ended = set(position["ended"])
    while len(ended) < workers:
        worker = position["next"]
        while not waiting[worker]:
            item = next(items)
            waiting[item.get("worker", item.get("end"))].append(item)
        item = waiting[worker].popleft()
        if "end" in item:
            ended.add(worker)
            position["ended"] = sorted(ended)
        else:
            position["rows"][worker] = item["rows"]
            position["batches"] += 1
        position["next"] = _next_worker(worker, ended, workers)
        if "end" not in item:
            yield item["batch"]


def _next_worker(worker: int, ended: set, workers: int) -> int:
    for step in range(1, workers + 1):
        candidate = (worker + step) % workers
        if candidate not in ended:
            return candidate
    return worker


def build_stream_loader(stream: TransformedStream, data, loader_kwargs: dict, seed: int, process) -> StreamLoader:
    """`process` = (rank, number of processes, device) of the process that reads this loader."""
    if data.steps_per_epoch is None:
        raise HfclsError("data.train streams (streaming: true) and a stream has no length: set data.steps_per_epoch")
    rank, world_size, device = process
    part = stream.for_process(seed, data.shuffle_buffer, rank, world_size, data.batch_size)
    return StreamLoader(part, loader_kwargs, data.steps_per_epoch, device)
