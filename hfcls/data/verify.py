"""Decode every image of every split; list unreadable files and bad labels (hfcls-verify)."""

from __future__ import annotations

import datasets
import torch
from tqdm.auto import tqdm

from hfcls.data.build import build_datasets
from hfcls.data.columns import NO_LABEL, label_feature
from hfcls.data.decode import DECODE_ERRORS, MAX_IMAGE_PIXELS, decode
from hfcls.errors import HfclsError


def check_row(row: dict, index: int, to_rgb: bool, num_classes: int, max_pixels: int = MAX_IMAGE_PIXELS) -> str:
    """What is wrong with one row ({'image': {'bytes', 'path'}, 'label'}: a class id, or a list of
    them for multi-label data), or '' when nothing is: decoded by the rule training uses
    (hfcls.data.decode), so what passes here trains."""
    name = row["image"].get("path") or f"row {index} (image bytes)"
    try:
        decode(row["image"], to_rgb, max_pixels)
    except DECODE_ERRORS as error:
        return f"cannot decode {name}: {error}"
    labels = row["label"] if isinstance(row["label"], list) else [row["label"]]
    outside = [label for label in labels if label != NO_LABEL and not 0 <= label < num_classes]
    if outside:
        return f"{name}: label {outside[0]} is outside [0, {num_classes})"
    return ""


class RowCheck(torch.utils.data.Dataset):
    """Row i -> `check_row` of it; a Dataset so that DataLoader workers can share the decoding."""

    def __init__(self, ds: datasets.Dataset, to_rgb: bool, max_pixels: int):
        self.ds, self.to_rgb, self.num_classes = ds, to_rgb, label_feature(ds.features).num_classes
        self.max_pixels = max_pixels

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, index: int) -> str:
        return check_row(self.ds[index], index, self.to_rgb, self.num_classes, self.max_pixels)


def verify_split(ds, split: str, to_rgb: bool, workers: int, max_pixels: int) -> tuple:
    """(every problem of one split, one line each in row order; the rows read)."""
    ds = ds.cast_column("image", datasets.Image(decode=False))
    if isinstance(ds, datasets.IterableDataset):  # a stream is read once, in this process
        num_classes = label_feature(ds.features).num_classes
        checks = (check_row(row, index, to_rgb, num_classes, max_pixels) for index, row in enumerate(ds))
    else:
        checks = torch.utils.data.DataLoader(RowCheck(ds, to_rgb, max_pixels), batch_size=None, num_workers=workers)
    problems, rows = [], 0
    for problem in tqdm(checks, total=getattr(ds, "num_rows", None), desc=f"verify {split}", unit="img"):
        rows += 1
        if problem:
            problems.append(f"{split}: {problem}")
    return problems, rows


def verify_datasets(recipe, workers: int = 0) -> tuple:
    """(every problem of every split, one line each; the images read; the splits checked)."""
    if workers < 0:
        raise HfclsError(f"workers must be 0 or more, got {workers}", param="workers")
    dsets = build_datasets(recipe.data, recipe.seed)
    problems, total = [], 0
    for split, ds in dsets.items():
        found, rows = verify_split(ds, split, recipe.data.to_rgb, workers, recipe.data.max_image_pixels)
        problems, total = problems + found, total + rows
    return problems, total, list(dsets)
