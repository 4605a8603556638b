"""In-memory mode (`data.in_memory: true`): a whole split as one uint8 tensor on the device.

For small data sets (digits, MNIST, CIFAR) the DataLoader itself is the
bottleneck: decoding and per-sample transforms cost more than the model. Here
each split is decoded once, passed through the deterministic head of its
pipeline (`Resize`, `CenterCrop`), and kept as one uint8 (N, C, H, W) tensor on
the training device; the random transforms are then drawn per image but applied
to whole batches there, with no workers (as the CIFAR-10 speed-record scripts
do). Batches are the same dicts the DataLoaders yield, still uint8: the engine
normalises them as usual.

Train pipelines supported: any `Resize`/`CenterCrop` first (applied at load),
then any of `RandomCrop` (size, padding, fill, padding_mode) and
`RandomHorizontalFlip`/`RandomVerticalFlip` (p), and MixUp/CutMix
(`train.mixup_alpha`/`cutmix_alpha`) on the batches. Anything else is an error
that names the transform. The order of samples and every augmentation are drawn from
`seed + epoch` on the CPU, so a run replays exactly (on any device, after a
resume, and whatever the number of processes, which only changes the sharding).
"""

from __future__ import annotations

import logging
import math

import datasets
import torch
from accelerate.data_loader import DataLoaderStateMixin
from accelerate.state import GradientState

from hfcls.data.columns import label_encoder
from hfcls.data.decode import SampleTransform, compose, stack_labels
from hfcls.data.mixing import mix_batch
from hfcls.data.seeding import balanced_rows, sample_seed
from hfcls.data.transforms import build_pipeline
from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)

STATIC = ("Resize", "CenterCrop")  # deterministic: applied once per image at load time


# ----------------------------------------------------------------------------- batch-wise transforms


class RandomCrop:
    """v2.RandomCrop for a batch: one random window per image, cut out by indexing."""

    def __init__(self, transform, where):
        if transform.pad_if_needed:
            raise HfclsError(
                f"{where}: RandomCrop pad_if_needed is not supported with data.in_memory; "
                "set padding, or Resize the images first"
            )
        if not isinstance(transform.fill, (int, float)):
            raise HfclsError(f"{where}: RandomCrop fill must be one number with data.in_memory")
        self.height, self.width = transform.size
        # v2.RandomCrop keeps its padding as [left, right, top, bottom]
        self.left, self.right, self.top, self.bottom = transform.padding or (0, 0, 0, 0)
        self.mode, self.fill = transform.padding_mode, int(transform.fill)

    def output_size(self, height, width):
        if height + self.top + self.bottom < self.height or width + self.left + self.right < self.width:
            raise HfclsError(
                f"RandomCrop of {self.height}x{self.width} is larger than the padded "
                f"{height}x{width} images; Resize them first (data.in_memory)"
            )
        return self.height, self.width

    def draw(self, count, height, width, generator) -> dict:
        top = torch.randint(0, height + self.top + self.bottom - self.height + 1, (count,), generator=generator)
        left = torch.randint(0, width + self.left + self.right - self.width + 1, (count,), generator=generator)
        return {"top": top, "left": left}

    def __call__(self, images, params):
        _, _, height, width = images.shape
        rows = params["top"][:, None] + torch.arange(self.height, device=images.device) - self.top
        cols = params["left"][:, None] + torch.arange(self.width, device=images.device) - self.left
        row_ok, rows = _pad_index(rows, height, self.mode)
        col_ok, cols = _pad_index(cols, width, self.mode)
        batch = torch.arange(len(images), device=images.device)[:, None, None]
        # Advanced indices around a slice: the result is (B, h, w, C).
        out = images[batch, :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
        if self.mode == "constant":
            inside = (row_ok[:, :, None] & col_ok[:, None, :])[:, None]
            out = torch.where(inside, out, torch.tensor(self.fill, dtype=out.dtype, device=out.device))
        return out.contiguous()


def _pad_index(index, size, mode):
    """Map indices into the padded image back onto the image, as padding `mode` reads it."""
    inside = (index >= 0) & (index < size)
    if mode in ("constant", "edge"):
        return inside, index.clamp(0, size - 1)
    if mode == "reflect":  # ...2 1 | 0 1 2 ... n-1 | n-2 ...
        index = index.abs()
        return inside, torch.where(index >= size, 2 * (size - 1) - index, index)
    # symmetric: ...1 0 | 0 1 ... n-1 | n-1 n-2 ...
    index = torch.where(index < 0, -index - 1, index)
    return inside, torch.where(index >= size, 2 * size - 1 - index, index)


class RandomFlip:
    """v2.RandomHorizontalFlip / RandomVerticalFlip for a batch."""

    def __init__(self, transform, dim):
        self.p, self.dim = transform.p, dim

    def output_size(self, height, width):
        return height, width

    def draw(self, count, height, width, generator) -> dict:
        return {"flip": torch.rand(count, generator=generator) < self.p}

    def __call__(self, images, params):
        return torch.where(params["flip"][:, None, None, None], images.flip(self.dim), images)


BATCHWISE = {
    "RandomCrop": lambda t, where: RandomCrop(t, where),
    "RandomHorizontalFlip": lambda t, where: RandomFlip(t, dim=-1),
    "RandomVerticalFlip": lambda t, where: RandomFlip(t, dim=-2),
}


def split_pipeline(
    specs: list, where: str, head=STATIC, tail=BATCHWISE, mode="data.in_memory", off="data.in_memory=false"
):
    """A recipe pipeline -> (its leading `head` transforms, the rest as `tail`'s batch-wise transforms).
    Anything else is an error naming the transform, what `mode` supports and how to turn it `off`."""
    pipeline = build_pipeline(specs, where)  # checks names and arguments
    transforms = pipeline.transforms if specs else []
    count = 0
    while count < len(specs) and specs[count]["type"] in head:
        count += 1
    batchwise = []
    for i in range(count, len(specs)):
        name = specs[i]["type"]
        if name not in tail:
            raise HfclsError(
                f"{where}[{i}]: {name} cannot run with {mode}; supported: {', '.join(head)} first, "
                f"then {', '.join(tail)} (or set {off})"
            )
        batchwise.append(tail[name](transforms[i], f"{where}[{i}]"))
    return transforms[:count], batchwise


# ----------------------------------------------------------------------------- loading


def decode_split(ds, pipeline, data, where: str, workers: int):
    """Every image of `ds` through `pipeline` -> (uint8 images (N, C, H, W), labels: int64 (N,)
    class ids or float (N, classes) multi-hot vectors, the row numbers kept: all but skipped bad images)."""
    decoding = ds.cast_column("image", datasets.Image(decode=False)).with_transform(
        SampleTransform(pipeline, data.to_rgb, data.max_image_pixels, label_encoder(ds.features))
    )
    loader = torch.utils.data.DataLoader(decoding, batch_size=256, num_workers=workers, collate_fn=_collate_decoded)
    images, labels, kept = [], [], []
    for batch, (decoded, samples) in enumerate(loader):
        for row, (image, sample) in enumerate(zip(decoded, samples), start=batch * loader.batch_size):
            if not sample["valid"]:
                if not data.skip_bad_images:
                    raise HfclsError(
                        f"cannot decode image {sample['file']}; remove or replace it, "
                        "or set data.skip_bad_images=true to skip such files"
                    )
                logger.warning("%s: skipping undecodable image %s", where, sample["file"])
                continue
            if images and image.shape != images[0].shape:
                raise HfclsError(
                    f"{where}: data.in_memory needs every image the same size after the pipeline's "
                    f"Resize/CenterCrop head; {sample['file']} is {tuple(image.shape)}, others "
                    f"{tuple(images[0].shape)}. Add a CenterCrop, or give Resize a [height, width]"
                )
            images.append(image)
            labels.append(sample["labels"])
            kept.append(row)
    if not images:
        raise HfclsError(
            f"{where}: no image could be decoded, every one was skipped (data.skip_bad_images); check the data"
        )
    return torch.stack(images), stack_labels(labels), kept


def _collate_decoded(samples: list):
    """(images, the samples' other fields): the images as one tensor when their sizes agree.
    Each tensor a worker sends costs a file descriptor; 50,000 single images exhaust them."""
    images = [sample.pop("pixel_values") for sample in samples]
    if all(image.shape == images[0].shape for image in images):
        images = torch.stack(images)
    return images, samples


class InMemoryLoader(DataLoaderStateMixin):
    """The loader protocol (hfcls.data.build) over a split held on the device, sharded over
    processes like a prepared DataLoader.

    Like Accelerate's own loaders it tells Accelerate where an epoch ends, so
    gradient accumulation always steps on an epoch's last batch.

    Training (`shuffle=True`): a new order and new augmentations every epoch
    (`set_epoch`), the last incomplete global batch dropped. Evaluation: the
    split in order, the last batches padded with repeats marked `valid=False`,
    so every process runs the same number of steps and each image counts once.
    With class-balance `weights` (hfcls.data.balance), training positions map to the
    epoch's balanced draw (`balanced_rows`) instead of to the images themselves.
    """

    def __init__(
        self,
        images,
        labels,
        batch_size,
        *,
        shuffle,
        seed,
        transforms=(),
        mix=None,
        process_index=0,
        num_processes=1,
        weights=None,
    ):
        self.images, self.labels = images, labels.to(images.device)
        self.batch_size, self.shuffle, self.seed, self.weights = batch_size, shuffle, seed, weights
        self.transforms, self.mix = list(transforms), mix
        self.process_index, self.num_processes = process_index, num_processes
        self.epoch, self._skip, self._yielded = 0, 0, 0
        self.gradient_state = GradientState()
        self._drop_last = shuffle
        global_batch = batch_size * num_processes
        count = len(images)
        self._steps = count // global_batch if shuffle else math.ceil(count / global_batch)
        if self._steps == 0:
            raise HfclsError(
                f"{count} images make no full batch of {batch_size} x {num_processes} processes; lower data.batch_size"
            )
        self.output_size = (images.shape[2], images.shape[3])
        for transform in self.transforms:
            self.output_size = transform.output_size(*self.output_size)

    def __len__(self):
        return self._steps

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_resolution(self, side: int | None) -> None:
        if side is not None:  # recipe validation refuses the combination first
            raise HfclsError(
                "data.progressive_resizing resizes a RandomResizedCrop, which a split held in memory "
                "does not run; set data.in_memory=false"
            )

    def state_dict(self) -> dict:
        return {"batches": self._yielded}

    def load_state_dict(self, state: dict) -> None:
        """Start the next pass at batch `state["batches"]` of the epoch (mid-epoch resume), same order."""
        self._skip = int(state.get("batches", 0))

    def __iter__(self):
        order, valid, params = self._plan()
        start, self._skip = self._skip, 0
        self._yielded = start
        self.begin()
        if not self.shuffle:
            # The real images of the last global batch: gather_for_metrics drops the padding repeats
            # after them, as it does for a prepared DataLoader's (and --out lists each image once).
            self.remainder = len(self.images) % (self.batch_size * self.num_processes)
        try:
            for step in range(start, self._steps):
                first = (step * self.num_processes + self.process_index) * self.batch_size
                positions = slice(first, first + self.batch_size)
                index = order[positions]
                images = self.images[index]
                for transform, drawn in zip(self.transforms, params):
                    images = transform(images, {k: v[positions] for k, v in drawn.items()})
                labels = self.labels[index]
                if self.mix is not None:  # float images (0-255) and soft labels, seeded by the batch's place
                    images, labels = mix_batch(self.mix, sample_seed(self.seed, self.epoch, first), images, labels)
                self.end_of_dataloader = step == self._steps - 1
                self._yielded = step + 1
                yield {"pixel_values": images, "labels": labels, "valid": valid[positions], "bad_files": []}
        finally:
            self.end()

    def _plan(self):
        """This epoch's sample order, valid mask and augmentation parameters, on the device."""
        count, total = len(self.images), self._steps * self.batch_size * self.num_processes
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.shuffle:
            order = torch.randperm(count, generator=generator)[:total]
            if self.weights is not None:
                order = balanced_rows(self.weights, self.seed, self.epoch)[order]
        else:
            order = torch.arange(total) % count  # padded with repeats of the first images
        valid = torch.arange(total) < count
        params, size = [], (self.images.shape[2], self.images.shape[3])
        for transform in self.transforms:
            params.append(transform.draw(total, *size, generator))
            size = transform.output_size(*size)
        device = self.images.device
        params = [{k: v.to(device) for k, v in drawn.items()} for drawn in params]
        return order.to(device), valid.to(device), params


def in_memory_loader(
    dataset,
    data,
    seed: int,
    accelerator,
    *,
    train: bool,
    workers: int,
    mix=None,
    batch_size: int | None = None,
    weights=None,
) -> InMemoryLoader:
    """A split decoded once onto the training device; `mix` (from build_mixer) mixes training batches,
    `weights` (hfcls.data.balance) balance their classes."""
    specs = data.train_pipeline if train else data.eval_pipeline
    where = f"data.{'train' if train else 'eval'}_pipeline"
    if train:
        head, batchwise = split_pipeline(specs, where)
        head = compose(head)
    else:
        head, batchwise = build_pipeline(specs, where), []
    images, labels, kept = decode_split(dataset, head, data, "data.train" if train else "data.val", workers)
    if weights is not None:
        weights = weights[kept]
    logger.info(
        "data.in_memory: %s split as %s uint8 (%.1f MiB) on %s",
        "train" if train else "eval",
        tuple(images.shape),
        images.numel() / 2**20,
        accelerator.device,
    )
    return InMemoryLoader(
        images.to(accelerator.device),
        labels,
        batch_size or data.batch_size,
        shuffle=train,
        seed=seed,
        transforms=batchwise,
        mix=mix,
        process_index=accelerator.process_index,
        num_processes=accelerator.num_processes,
        weights=weights,
    )
