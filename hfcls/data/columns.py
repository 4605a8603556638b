"""Columns every source ends with: `image` (datasets.Image) and `label` (datasets.ClassLabel)."""

from __future__ import annotations

import datasets

from hfcls.errors import HfclsError, did_you_mean


def standardize(ds, image_column: str, label_column: str, where: str, classes: list | None = None):
    """Rename to `image`/`label`, drop other columns, make `label` a ClassLabel (Dataset or IterableDataset)."""
    for column in (image_column, label_column):
        if column not in ds.column_names:
            raise HfclsError(f"{where}: no column {column!r}{did_you_mean(column, ds.column_names)}; "
                             f"columns: {', '.join(ds.column_names)} (set image_column/label_column)")
    ds = ds.select_columns([image_column, label_column])
    ds = ds.rename_columns({k: v for k, v in {image_column: "image", label_column: "label"}.items() if k != v})
    if not isinstance(ds.features["image"], datasets.Image):
        raise HfclsError(f"{where}: column {image_column!r} holds {ds.features['image']}, not images")
    label = ds.features["label"]
    if classes is not None:
        ds = ds.cast_column("label", datasets.ClassLabel(names=[str(c) for c in classes]))
    elif isinstance(label, datasets.Value) and label.dtype == "string":
        if isinstance(ds, datasets.IterableDataset):
            raise HfclsError(f"{where}: a stream's text labels cannot be numbered without reading it all; "
                             "list the class names with classes: [...]")
        ds = ds.class_encode_column("label")
    elif not isinstance(label, datasets.ClassLabel):
        raise HfclsError(f"{where}: labels are {label} without class names; list them with classes: [...]")
    return ds
