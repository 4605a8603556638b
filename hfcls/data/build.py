"""The one door to the data: Recipe.data -> datasets -> loaders.

    build_datasets(data, seed, splits)           the recipe's sources as datasets.Dataset(image, label)
    build_split(data, seed, split)               one of them
    build_train_loader(recipe, dataset, accelerator)
    build_eval_loader(data, dataset, accelerator, seed, batch_size=None)

Every loader is one of four kinds, chosen here and nowhere else: DataLoader
workers (`loaders.WorkerLoader`), workers that only read the files for a batch
decoded on the device (`on_device.on_device_loader`, data.decode: cuda or cpu),
a stream (`streaming.StreamLoader`) or a split held on the device
(`in_memory.InMemoryLoader`). All keep one protocol, so nothing above this door
asks which kind it holds:

    len(loader)                  batches per epoch, this process
    loader.set_epoch(epoch)      the epoch's order and augmentations
    loader.set_resolution(side)  the training crop's side from now on (progressive resizing); None: the pipeline's
    iter(loader)                 dicts of uint8 `pixel_values` (float after MixUp/CutMix),
                                 `labels`, a `valid` mask and `bad_files`, on the device
    loader.state_dict()          where the epoch stands, as JSON-able values
    loader.load_state_dict(s)    the next pass continues from there (exact mid-epoch resume)
"""

from __future__ import annotations

import collections
import logging
import os

import datasets

from hfcls.data.balance import sample_weights
from hfcls.data.columns import (
    DIFFICULT,
    as_multi_label,
    class_names,
    is_multi_label,
    label_encoder,
    multi_label_features,
)
from hfcls.data.decode import MAX_IMAGE_PIXELS, SampleTransform, collate
from hfcls.data.in_memory import in_memory_loader
from hfcls.data.loaders import WorkerLoader, data_loader
from hfcls.data.mixing import build_mixer, mixing_collate
from hfcls.data.on_device import on_device_loader
from hfcls.data.seeding import SeededSamples, seed_worker
from hfcls.data.sources import load_source
from hfcls.data.streaming import TransformedStream, build_stream_loader
from hfcls.data.transforms import build_pipeline
from hfcls.errors import HfclsError
from hfcls.labels import MULTI_LABEL, SINGLE_LABEL

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


# ----------------------------------------------------------------------------- datasets


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
        out["train"], out["val"] = split_off_val(out["train"], data.train_val_split, seed)
    reference = next(iter(out.values()), None)
    if reference is None:
        raise HfclsError(f"the recipe defines none of data.{', data.'.join(splits)}")
    reference = out.get("train", reference)
    names = class_names(reference)
    for split, ds in out.items():
        if split != "train" and is_multi_label(reference.features):  # a val list where no image has two classes
            ds = as_multi_label(ds, where=f"data.{split}")
        out[split] = align_labels(ds, names, where=f"data.{split}")
        if is_multi_label(out[split].features) != is_multi_label(reference.features):
            raise HfclsError(
                f"data.{split} has lists of classes (multi-label) but data.train one class per image; "
                "give every split the same kind of labels"
            )
    return datasets.DatasetDict(out)


def build_split(data, seed: int, split: str):
    """One split of the recipe: with data.train_val_split, train and val are the two parts of the train source."""
    splits = ("train", "val") if split in ("train", "val") and data.train_val_split else (split,)
    return build_datasets(data, seed, splits)[split]


def split_off_val(train, fraction: float, seed: int) -> tuple:
    """(train, val): `fraction` of the images held out, stratified by class and seeded."""
    counts = collections.Counter(train["label"]) if isinstance(train.features["label"], datasets.ClassLabel) else {}
    fewest = min(counts, key=counts.get, default=None)
    if fewest is not None and counts[fewest] < 2:
        raise HfclsError(
            f"data.train_val_split: class {class_names(train)[fewest]!r} has {counts[fewest]} image, "
            "too few to hold some out (a stratified split needs 2 per class); add images or give "
            "data.val a source"
        )
    # datasets stratifies by one ClassLabel only, so multi-label data is split at random.
    stratify = "label" if counts else None
    try:
        parts = train.train_test_split(test_size=fraction, seed=seed, stratify_by_column=stratify)
    except ValueError as error:  # e.g. a val split smaller than the class count
        raise HfclsError(f"data.train_val_split {fraction}: {error}") from None
    return parts["train"], parts["test"]


def check_labelled(ds, where: str, need: str) -> None:
    """Refuse a split with unlabelled rows (-1: a list line without a label) where labels are needed;
    a stream is not read ahead to find out."""
    if isinstance(ds, datasets.IterableDataset) or not isinstance(ds.features["label"], datasets.ClassLabel):
        return
    missing = sum(1 for label in ds["label"] if label < 0)
    if missing:
        raise HfclsError(f"{where}: {missing} of its {len(ds)} images have no label (a list line without one); {need}")


def problem_type_of(ds) -> str:
    """What the data asks the model to be: multi-label when its labels are lists of classes."""
    return MULTI_LABEL if is_multi_label(ds.features) else SINGLE_LABEL


def for_problem(ds, problem_type: str, where: str):
    """`ds` labelled as a model of `problem_type` is trained and tested: single-label data
    becomes one-class lists for a multi-label model; multi-label data cannot serve a single-label one."""
    if problem_type == MULTI_LABEL:
        return as_multi_label(ds, where)
    if is_multi_label(ds.features):
        raise HfclsError(
            f"{where} is multi-label (lists of classes) but the model is single-label; train a "
            "multi-label model (model.problem_type: multi_label_classification, inferred from the data "
            "when unset) or give single-label data"
        )
    return ds


def align_labels(ds, names: list, where: str):
    """Re-number `ds`'s labels to follow `names` (e.g. a val folder missing a class)."""
    own = class_names(ds)
    if own == names:
        return ds
    unknown = sorted(set(own) - set(names))
    if unknown:
        raise HfclsError(f"{where} has classes the training set lacks: {', '.join(unknown[:10])}")
    mapping = [names.index(name) for name in own]
    if is_multi_label(ds.features):
        columns = [c for c in ("label", DIFFICULT) if c in ds.column_names]
        return ds.map(
            lambda batch: {c: [[mapping[i] for i in row] for row in batch[c]] for c in columns},
            batched=True,
            features=multi_label_features(ds.features, names),
        )
    # -1 is datasets' "no label" (an unlabeled test list): it stays -1.
    features = ds.features.copy()
    features["label"] = datasets.ClassLabel(names=names)
    return ds.map(
        lambda batch: {"label": [mapping[i] if i >= 0 else i for i in batch["label"]]}, batched=True, features=features
    )


def with_transform(ds, specs: list, where: str, to_rgb: bool, max_pixels: int = MAX_IMAGE_PIXELS, scaled: bool = False):
    """`ds` decoding and transforming its rows as they are read (`scaled`: JPEGs at a reduced scale where
    the pipeline's first crop allows); a stream becomes a TransformedStream."""
    transform = SampleTransform(
        build_pipeline(specs, where), to_rgb, max_pixels, label_encoder(ds.features), scaled=scaled
    )
    ds = ds.cast_column("image", datasets.Image(decode=False))
    if isinstance(ds, datasets.IterableDataset):
        return TransformedStream(ds, transform)
    ds.set_transform(transform)
    return ds


# ----------------------------------------------------------------------------- loaders


def build_train_loader(recipe, dataset, accelerator):
    """The training loader of `dataset` (a training split from build_datasets) for this process."""
    data, train = recipe.data, recipe.train
    mix = build_mixer(len(class_names(dataset)), train.mixup_alpha, train.cutmix_alpha)
    if DIFFICULT in dataset.column_names:  # trained as absent, as MMPretrain trains on VOC; metrics ignore them
        dataset = dataset.remove_columns(DIFFICULT)
    weights = balance_weights(dataset, data)
    if data.in_memory:
        return in_memory_loader(
            dataset, data, recipe.seed, accelerator, train=True, workers=worker_count(data), mix=mix, weights=weights
        )
    workers = worker_count(data)
    if data.decode != "workers":
        if weights is not None:
            raise HfclsError(
                f"data.decode {data.decode} draws no class-balanced sample; leave data.decode at "
                "workers to use data.sampler"
            )
        return on_device_loader(
            dataset, data, recipe.seed, accelerator, train=True, workers=workers, batch_size=data.batch_size, mix=mix
        )
    dataset = with_transform(
        dataset,
        data.train_pipeline,
        "data.train_pipeline",
        data.to_rgb,
        data.max_image_pixels,
        scaled=data.scaled_decode != "off",
    )
    if isinstance(dataset, TransformedStream):
        if mix is not None:
            raise HfclsError(
                "train.mixup_alpha/cutmix_alpha need per-sample seeds, which a stream (streaming: true) "
                "lacks; turn MixUp/CutMix off or use a map-style source"
            )
        kwargs = dict(
            num_workers=workers,
            pin_memory=pin_memory(data, accelerator.device),
            worker_init_fn=seed_worker,
            prefetch_factor=data.prefetch_factor if workers > 0 else None,
        )
        process = (accelerator.process_index, accelerator.num_processes, accelerator.device)
        return build_stream_loader(dataset, data, kwargs, recipe.seed, process)
    samples = SeededSamples(dataset, recipe.seed, weights)
    loader = data_loader(
        samples,
        data,
        data.batch_size,
        True,
        recipe.seed,
        pin_memory(data, accelerator.device),
        mixing_collate(collate, mix),
        seed_worker,
        workers,
    )
    return WorkerLoader(accelerator.prepare_data_loader(loader), samples)


def balance_weights(dataset, data):
    """Each training row's weight in a class-balanced epoch (data.sampler), or None for plain shuffling."""
    if data.sampler is None:
        return None
    return sample_weights(dataset, data.oversample_thr)


def build_eval_loader(data, dataset, accelerator, seed: int, batch_size: int | None = None):
    """The loader of an evaluation split, read in order; every sample counts once after
    `gather_for_metrics` (repeats that even out the last batches are dropped or marked invalid)."""
    batch_size = batch_size or data.eval_batch_size or data.batch_size
    if data.in_memory:
        return in_memory_loader(
            dataset, data, seed, accelerator, train=False, workers=worker_count(data), batch_size=batch_size
        )
    if data.decode != "workers":
        return on_device_loader(
            dataset, data, seed, accelerator, train=False, workers=worker_count(data), batch_size=batch_size
        )
    dataset = with_transform(
        dataset,
        data.eval_pipeline,
        "data.eval_pipeline",
        data.to_rgb,
        data.max_image_pixels,
        scaled=data.scaled_decode == "all",
    )
    if isinstance(dataset, TransformedStream):
        raise HfclsError(
            "streaming (streaming: true) is for the training data; give data.val and "
            "data.test sources that are read in full"
        )
    loader = data_loader(
        dataset,
        data,
        batch_size,
        False,
        seed,
        pin_memory(data, accelerator.device),
        collate,
        seed_worker,
        worker_count(data),
    )
    return WorkerLoader(accelerator.prepare_data_loader(loader))


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
