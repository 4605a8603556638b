"""Recipe.data -> DatasetDict{train, val, test} -> DataLoaders of uint8 batches."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import datasets
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

from hfcls.data.sources import load_source
from hfcls.dist import seed_worker
from hfcls.data.streaming import TransformedStream, build_stream_loader
from hfcls.data.transforms import build_pipeline
from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def build_datasets(data, seed: int, splits=SPLITS) -> datasets.DatasetDict:
    """Load the recipe's sources; val/test share train's class names and label ids."""
    out = {}
    for split in splits:
        spec = getattr(data, split)
        if spec is not None:
            out[split] = load_source(spec, where=f"data.{split}")
    if data.train_val_split is not None and isinstance(out.get("train"), datasets.IterableDataset):
        raise HfclsError("data.train_val_split cannot split a stream (streaming: true); give data.val a source")
    if data.train_val_split is not None and "train" in out and "val" in splits:
        parts = out["train"].train_test_split(
            test_size=data.train_val_split, seed=seed, stratify_by_column="label"
        )
        out["train"], out["val"] = parts["train"], parts["test"]
    reference = next(iter(out.values()), None)
    if reference is None:
        raise HfclsError(f"the recipe defines none of data.{', data.'.join(splits)}")
    names = class_names(out.get("train", reference))
    for split, ds in out.items():
        out[split] = align_labels(ds, names, where=f"data.{split}")
    return datasets.DatasetDict(out)


def class_names(ds: datasets.Dataset) -> list:
    return list(ds.features["label"].names)


def align_labels(ds: datasets.Dataset, names: list, where: str) -> datasets.Dataset:
    """Re-number `ds`'s labels to follow `names` (e.g. a val folder missing a class)."""
    own = class_names(ds)
    if own == names:
        return ds
    unknown = sorted(set(own) - set(names))
    if unknown:
        raise HfclsError(f"{where} has classes the training set lacks: {', '.join(unknown[:10])}")
    mapping = [names.index(name) for name in own]
    # -1 is datasets' "no label" (an unlabeled test list): it stays -1.
    features = ds.features.copy()
    features["label"] = datasets.ClassLabel(names=names)
    return ds.map(lambda batch: {"label": [mapping[i] if i >= 0 else i for i in batch["label"]]},
                  batched=True, features=features)


class SampleTransform:
    """Decode one batch of rows and apply the v2 pipeline; runs in DataLoader workers.

    An image that cannot be decoded becomes a black placeholder marked invalid,
    with its file name kept: the main process raises a clear error or skips it,
    and every process still runs the same batches (no rank falls out of step).
    """

    def __init__(self, pipeline, to_rgb: bool):
        self.pipeline = pipeline
        self.to_rgb = to_rgb

    def __call__(self, batch: dict) -> dict:
        images, valid, names = [], [], []
        for image in batch["image"]:
            name = image.get("path") or "<in-memory image>"
            try:
                images.append(self.pipeline(decode(image, self.to_rgb)))
                valid.append(True)
            except (OSError, UnidentifiedImageError, ValueError) as error:
                logger.warning("cannot decode image %s: %s", name, error)
                images.append(self.pipeline(torch.zeros(3, 256, 256, dtype=torch.uint8)))
                valid.append(False)
            names.append(name)
        return {"pixel_values": images, "labels": batch["label"], "valid": valid, "file": names}


def decode(image: dict, to_rgb: bool) -> torch.Tensor:
    """{'path', 'bytes'} as `datasets.Image(decode=False)` stores it -> uint8 CHW tensor.

    torchvision's decoder reads JPEG/PNG/WebP/GIF 2-4x faster than Pillow here
    (benchmarks/README.md); Pillow reads the other formats and names what is
    wrong with a corrupt file.
    """
    data = image["bytes"] if image.get("bytes") else Path(image["path"]).read_bytes()
    try:
        return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                            mode=ImageReadMode.RGB if to_rgb else ImageReadMode.UNCHANGED)
    except RuntimeError:
        pass
    with Image.open(io.BytesIO(data)) as pil:
        pil = pil.convert("RGB") if to_rgb else pil
        return F.pil_to_tensor(pil)


def attach_transforms(dsets: datasets.DatasetDict, data) -> datasets.DatasetDict:
    """Each split decodes and transforms its rows when read; a stream becomes a TransformedStream."""
    train = build_pipeline(data.train_pipeline, "data.train_pipeline")
    evaluate = build_pipeline(data.eval_pipeline, "data.eval_pipeline")
    for split, ds in dsets.items():
        ds = ds.cast_column("image", datasets.Image(decode=False))
        transform = SampleTransform(train if split == "train" else evaluate, data.to_rgb)
        if isinstance(ds, datasets.IterableDataset):
            ds = TransformedStream(ds, transform)
        else:
            ds.set_transform(transform)
        dsets[split] = ds
    return dsets


def collate(samples: list) -> dict:
    """Stack uint8 images, labels and the valid-image mask; list undecodable files."""
    return {
        "pixel_values": torch.stack([s["pixel_values"] for s in samples]),
        "labels": torch.tensor([s["labels"] for s in samples], dtype=torch.long),
        "valid": torch.tensor([s["valid"] for s in samples], dtype=torch.bool),
        "bad_files": [s["file"] for s in samples if not s["valid"]],
    }


def worker_count(data) -> int:
    """data.num_workers, or by default the CPU cores this process may use (split between
    the processes of this node), at most 8: enough to keep a GPU fed, no oversubscription."""
    if data.num_workers is not None:
        return data.num_workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def pin_memory(data, device) -> bool:
    """Page-locked batches for fast, non-blocking copies: on CUDA, unless data.pin_memory is off."""
    return device.type == "cuda" and data.pin_memory


def build_loader(ds, data, batch_size: int, shuffle: bool, seed: int, pin_memory: bool, process=None):
    """A DataLoader, or for a training stream a StreamLoader reading this `process`'s part
    (`process` = (rank, number of processes, device))."""
    workers = worker_count(data)
    kwargs = dict(
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=shuffle,  # training only: a size-1 last batch breaks BatchNorm
        prefetch_factor=data.prefetch_factor if workers > 0 else None,
        worker_init_fn=seed_worker,  # workers' augmentations differ between ranks
    )
    if isinstance(ds, TransformedStream):
        if not shuffle or process is None:
            raise HfclsError("streaming (streaming: true) is for the training data; give data.val and "
                             "data.test sources that are read in full")
        # Workers restart each pass so that they see the stream's new epoch.
        return build_stream_loader(ds, data, kwargs, seed, process)
    return torch.utils.data.DataLoader(
        ds,
        shuffle=shuffle,
        persistent_workers=data.persistent_workers and workers > 0,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )
