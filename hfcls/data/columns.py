"""Columns every source ends with: `image` (datasets.Image) and `label`.

`label` is a `ClassLabel` (one class per image) or a `List(ClassLabel)` (multi-label:
every class the image shows). PASCAL VOC adds `difficult`, a `List(ClassLabel)` of
the classes shown only by objects marked difficult, which metrics ignore.
Loaders carry a multi-label row as a multi-hot vector (`MultiHot`).
"""

from __future__ import annotations

import datasets
import torch

from hfcls.errors import HfclsError, did_you_mean

DIFFICULT = "difficult"
NO_LABEL = -1  # datasets' "no label" (an unlabeled test list)


def is_multi_label(features) -> bool:
    return isinstance(features["label"], (datasets.List, datasets.LargeList))


def label_feature(features) -> datasets.ClassLabel:
    """The ClassLabel of the `label` column, inside its List for multi-label data."""
    label = features["label"]
    return label.feature if is_multi_label(features) else label


def class_names(ds) -> list:
    return list(label_feature(ds.features).names)


def multi_label_features(features, names: list) -> datasets.Features:
    """`features` with `label` (and `difficult`) as lists of the classes `names`."""
    features = features.copy()
    for column in ("label", DIFFICULT):
        if column in features:
            features[column] = datasets.List(datasets.ClassLabel(names=names))
    return features


def as_multi_label(ds, where: str):
    """A single-label split as multi-label data: each image's class as a one-class list."""
    if is_multi_label(ds.features):
        return ds
    if isinstance(ds, datasets.IterableDataset):
        raise HfclsError(f"{where}: a single-label stream cannot become multi-label data; give a multi-label source")
    unlabeled = next((i for i, label in enumerate(ds["label"]) if label == NO_LABEL), None)
    if unlabeled is not None:
        raise HfclsError(
            f"{where}: row {unlabeled} has no label, and a multi-label split cannot tell an unlabeled "
            "image from one without classes; label every image of the split"
        )
    features = multi_label_features(ds.features, class_names(ds))
    return ds.map(lambda batch: {"label": [[label] for label in batch["label"]]}, batched=True, features=features)


class MultiHot:
    """A batch's label lists -> multi-hot float vectors: 1 for a class shown, 0 for one absent,
    -1 for one shown only by difficult objects (PASCAL VOC), which metrics ignore."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    def __call__(self, batch: dict) -> list:
        difficult = batch.get(DIFFICULT) or [()] * len(batch["label"])
        return [self.vector(labels, hard) for labels, hard in zip(batch["label"], difficult)]

    def vector(self, labels, difficult=()) -> torch.Tensor:
        vector = torch.zeros(self.num_classes)
        vector[[c for c in difficult if c not in labels]] = -1
        vector[list(labels)] = 1
        return vector


def label_encoder(features):
    """How loaders carry the labels of a batch of rows: class ids, or multi-hot vectors."""
    if is_multi_label(features):
        return MultiHot(len(label_feature(features).names))
    return _class_ids


def _class_ids(batch: dict) -> list:
    return batch["label"]


def standardize(ds, image_column: str, label_column: str, where: str, classes: list | None = None):
    """Rename to `image`/`label`, drop other columns, make `label` a ClassLabel or, for a column
    of lists, a List(ClassLabel) (Dataset or IterableDataset)."""
    for column in (image_column, label_column):
        if column not in ds.column_names:
            raise HfclsError(
                f"{where}: no column {column!r}{did_you_mean(column, ds.column_names)}; "
                f"columns: {', '.join(ds.column_names)} (set image_column/label_column)"
            )
    ds = ds.select_columns([image_column, label_column])
    ds = ds.rename_columns({k: v for k, v in {image_column: "image", label_column: "label"}.items() if k != v})
    if not isinstance(ds.features["image"], datasets.Image):
        raise HfclsError(f"{where}: column {image_column!r} holds {ds.features['image']}, not images")
    if is_multi_label(ds.features):
        return _standardize_lists(ds, where, classes)
    label = ds.features["label"]
    if classes is not None:
        ds = ds.cast_column("label", datasets.ClassLabel(names=[str(c) for c in classes]))
    elif isinstance(label, datasets.Value) and label.dtype == "string":
        if isinstance(ds, datasets.IterableDataset):
            raise HfclsError(
                f"{where}: a stream's text labels cannot be numbered without reading it all; "
                "list the class names with classes: [...]"
            )
        ds = ds.class_encode_column("label")
    elif not isinstance(label, datasets.ClassLabel):
        raise HfclsError(f"{where}: labels are {label} without class names; list them with classes: [...]")
    return ds


def _standardize_lists(ds, where: str, classes: list | None):
    """A label column of lists: class ids with names, or class names (sorted, unless `classes` orders them)."""
    inner = ds.features["label"].feature
    if classes is not None and not (isinstance(inner, datasets.Value) and inner.dtype == "string"):
        return ds.cast(multi_label_features(ds.features, [str(c) for c in classes]))
    if isinstance(inner, datasets.ClassLabel):
        return ds
    if not (isinstance(inner, datasets.Value) and inner.dtype == "string"):
        raise HfclsError(f"{where}: labels are lists of {inner} without class names; list them with classes: [...]")
    if isinstance(ds, datasets.IterableDataset) and classes is None:
        raise HfclsError(
            f"{where}: a stream's text labels cannot be numbered without reading it all; "
            "list the class names with classes: [...]"
        )
    names = [str(c) for c in classes] if classes is not None else sorted({n for row in ds["label"] for n in row})
    index = {name: i for i, name in enumerate(names)}

    def encode(batch):
        unknown = next((n for row in batch["label"] for n in row if n not in index), None)
        if unknown is not None:
            raise HfclsError(
                f"{where}: label {unknown!r} is not among the classes {', '.join(names[:10])}; "
                "fix the label or the class list"
            )
        return {"label": [[index[n] for n in row] for row in batch["label"]]}

    return ds.map(encode, batched=True, features=multi_label_features(ds.features, names))
