"""Transformed samples with their class names, as one picture (hfcls-browse).

What the model sees, as MMClassification's browse_dataset shows it: each image
after the split's pipeline (train augmentations or eval resize/crop), before
normalisation, titled with its class name (every class, for multi-label data).
"""

from __future__ import annotations

import itertools
import math

import datasets
import torch

from hfcls.data.build import build_datasets, class_names, with_transform
from hfcls.errors import HfclsError
from hfcls.extras import pyplot
from hfcls.files import replacing


def sample_grid(ds, names: list, n: int, out: str, columns: int | None = None) -> int:
    """Save `n` transformed samples of `ds` (a dataset or a stream) as one image;
    return how many were drawn."""
    plt = pyplot("hfcls-browse")
    if isinstance(ds, datasets.Dataset):
        # A seeded spread over the whole split, not its first rows (often all one class).
        order = torch.randperm(len(ds))[:n].sort().values.tolist()
        samples = [ds[i] for i in order]
    else:  # a stream: its first samples, already shuffled by its buffer
        samples = list(itertools.islice(ds.samples(), n))
    count = len(samples)
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.2 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for sample, axis in zip(samples, axes.flat):
        axis.imshow(sample["pixel_values"].permute(1, 2, 0).numpy(), cmap="gray")
        axis.set_title(
            title(sample["labels"], names) if sample["valid"] else f"UNREADABLE {sample['file']}", fontsize=8
        )
    figure.tight_layout()
    with replacing(out) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)
    return count


def title(label, names: list) -> str:
    """A class id, or a multi-hot vector (every class shown; a difficult-only one in brackets)."""
    if isinstance(label, torch.Tensor):
        shown = [names[i] for i in (label == 1).nonzero().flatten()]
        shown += [f"({names[i]})" for i in (label == -1).nonzero().flatten()]
        return ", ".join(shown) or "(no label)"
    return names[label] if label >= 0 else "(no label)"


def browse(recipe, split: str, n: int, out, columns: int | None = None) -> int:
    """Draw `n` samples of `split` after its pipeline (train: augmented) into `out`; return how many."""
    if n < 1:
        raise HfclsError(f"n must be at least 1, got {n}", param="n")
    if columns is not None and columns < 1:
        raise HfclsError(f"columns must be at least 1, got {columns}", param="columns")
    dsets = build_datasets(recipe.data, recipe.seed)
    if split not in dsets:
        raise HfclsError(f"{recipe.source} defines no {split} data; splits: {', '.join(dsets)}")
    data = recipe.data
    specs, where = (
        (data.train_pipeline, "data.train_pipeline") if split == "train" else (data.eval_pipeline, "data.eval_pipeline")
    )
    torch.manual_seed(recipe.seed)  # the same augmentations on every run
    ds = with_transform(dsets[split], specs, where, data.to_rgb, data.max_image_pixels)
    return sample_grid(ds, class_names(dsets[split]), n, out, columns)
