"""Data sources: one loader function per format, each returning a `datasets.Dataset`
with exactly two columns, `image` (`Image`) and `label` (`ClassLabel`).

A recipe names a source as `{type: <name>, **keys}`; the keys are the loader's
keyword arguments, so a loader's signature is its documentation and its check.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import datasets

from hfcls.errors import HfclsError, did_you_mean


def imagefolder(path: str):
    """A folder with one sub-folder per class: `path/<class>/<image>`."""
    folder = Path(path)
    if not folder.is_dir():
        raise HfclsError(f"image folder {path} does not exist; prepare the data or fix data.*.path")
    try:
        ds = datasets.load_dataset("imagefolder", data_dir=str(folder), split="train")
    except (ValueError, FileNotFoundError) as error:
        raise HfclsError(f"image folder {path}: {error}") from None
    return standardize(ds, "image", "label", where=str(path))


def hub(name: str, split: str = "train", config: str | None = None, revision: str | None = None,
        image_column: str = "image", label_column: str = "label", classes: list | None = None):
    """A dataset on the Hugging Face Hub (or a local dataset script/folder) by name."""
    try:
        ds = datasets.load_dataset(name, config, split=split, revision=revision)
    except datasets.exceptions.DatasetNotFoundError as error:
        raise HfclsError(f"hub dataset {name}: {error}") from None
    except ConnectionError as error:
        raise HfclsError(f"hub dataset {name} could not be fetched ({error}); go online or use a local source") from None
    return standardize(ds, image_column, label_column, where=f"hub dataset {name}", classes=classes)


SOURCES = {"imagefolder": imagefolder, "hub": hub}


def load_source(spec: dict, where: str) -> datasets.Dataset:
    """Build the dataset a recipe's source mapping describes."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise HfclsError(f"{where} needs a type: one of {', '.join(SOURCES)}")
    kwargs = dict(spec)
    kind = kwargs.pop("type")
    if kind not in SOURCES:
        raise HfclsError(f"{where}.type: unknown source {kind!r}{did_you_mean(kind, SOURCES)}; "
                         f"known: {', '.join(SOURCES)}")
    loader = SOURCES[kind]
    parameters = inspect.signature(loader).parameters
    for key in kwargs:
        if key not in parameters:
            raise HfclsError(f"{where}: unknown key {key}{did_you_mean(key, parameters)} for a {kind} source; "
                             f"its keys: {', '.join(parameters)}")
    missing = [n for n, p in parameters.items() if p.default is inspect.Parameter.empty and n not in kwargs]
    if missing:
        raise HfclsError(f"{where}: a {kind} source needs {', '.join(missing)}")
    ds = loader(**kwargs)
    if len(ds) == 0:
        raise HfclsError(f"{where}: the {kind} source has no samples")
    return ds


def standardize(ds: datasets.Dataset, image_column: str, label_column: str, where: str,
                classes: list | None = None) -> datasets.Dataset:
    """Rename to `image`/`label`, drop other columns, make `label` a ClassLabel."""
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
        ds = ds.class_encode_column("label")
    elif not isinstance(label, datasets.ClassLabel):
        raise HfclsError(f"{where}: labels are {label} without class names; list them with classes: [...]")
    return ds
