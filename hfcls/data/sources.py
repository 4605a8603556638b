"""Data sources: one loader function per format, each returning a `datasets.Dataset`
with exactly two columns, `image` (`Image`) and `label` (`ClassLabel`).

A recipe names a source as `{type: <name>, **keys}`; the keys are the loader's
keyword arguments, so a loader's signature is its documentation and its check.
"""

from __future__ import annotations

import glob
import inspect
from pathlib import Path

import datasets
from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder

from hfcls.data.columns import standardize
from hfcls.data.formats import FORMATS
from hfcls.data.formats.common import class_folder_images, read_classes
from hfcls.data.formats.metadata import metadata_file, metadata_images
from hfcls.errors import HfclsError, did_you_mean


def imagefolder(path: str, classes: list | str | None = None, labels_sep: str = ",", allow_empty: bool = False):
    """A folder with one sub-folder per class, `path/<class>/<image>`; or images whose labels a
    `path/metadata.jsonl` or `metadata.csv` lists (hfcls.data.formats.metadata; multi-label when a
    row lists several: then `classes`, `labels_sep` and `allow_empty` apply)."""
    folder = Path(path)
    if not folder.is_dir():
        raise HfclsError(f"image folder {path} does not exist; prepare the data or fix data.*.path")
    metadata = metadata_file(folder)
    if metadata is not None:
        return metadata_images(
            metadata, read_classes(classes, f"image folder {path}"), f"classes {classes}", labels_sep, allow_empty
        )
    if classes is not None:
        raise HfclsError(
            f"image folder {path}: classes applies to a folder with a metadata.jsonl or metadata.csv; "
            "class folders name the classes themselves"
        )
    class_folder_images(folder, ImageFolder.EXTENSIONS)  # refuses what datasets would drop or misread
    # One pattern for the class folders' files, not data_dir: from a data_dir datasets globs the tree
    # once per split-name pattern it knows (0.8 s a split here, on every run, cached or not) and takes
    # class folders named train or test for splits. Escaped: a folder name may hold [ or *.
    files = str(Path(glob.escape(str(folder))) / "*" / "*")
    try:
        # drop_labels=False: a single class folder still names its class (a val split of one class)
        ds = datasets.load_dataset("imagefolder", data_files={"train": files}, split="train", drop_labels=False)
    except (ValueError, FileNotFoundError) as error:
        raise HfclsError(f"image folder {path}: {error}") from None
    return standardize(ds, "image", "label", where=str(path))


def hub(
    name: str,
    split: str = "train",
    config: str | None = None,
    revision: str | None = None,
    image_column: str = "image",
    label_column: str = "label",
    classes: list | None = None,
    streaming: bool = False,
):
    """A dataset on the Hugging Face Hub (or a local dataset script/folder) by name;
    `streaming: true` reads it while training instead of downloading it first."""
    try:
        ds = datasets.load_dataset(name, config, split=split, revision=revision, streaming=streaming)
    except ConnectionError as error:
        raise HfclsError(
            f"hub dataset {name} could not be fetched ({error}); go online or use a local source"
        ) from None
    except (datasets.exceptions.DatasetNotFoundError, FileNotFoundError, ValueError, RuntimeError) as error:
        # datasets' own messages (no such dataset or split, a dataset script it no longer runs, ...)
        raise HfclsError(f"hub dataset {name}: {_one_line(error)}") from None
    return standardize(ds, image_column, label_column, where=f"hub dataset {name}", classes=classes)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


SOURCES = {"imagefolder": imagefolder, "hub": hub, **FORMATS}


def load_source(spec: dict, where: str) -> datasets.Dataset:
    """Build the dataset a recipe's source mapping describes."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise HfclsError(f"{where} needs a type: one of {', '.join(SOURCES)}")
    kwargs = dict(spec)
    kind = kwargs.pop("type")
    if kind not in SOURCES:
        raise HfclsError(
            f"{where}.type: unknown source {kind!r}{did_you_mean(kind, SOURCES)}; known: {', '.join(SOURCES)}"
        )
    loader = SOURCES[kind]
    parameters = inspect.signature(loader).parameters
    for key in kwargs:
        if key not in parameters:
            raise HfclsError(
                f"{where}: unknown key {key}{did_you_mean(key, parameters)} for a {kind} source; "
                f"its keys: {', '.join(parameters)}"
            )
    missing = [n for n, p in parameters.items() if p.default is inspect.Parameter.empty and n not in kwargs]
    if missing:
        raise HfclsError(f"{where}: a {kind} source needs {', '.join(missing)}")
    ds = loader(**kwargs)
    if isinstance(ds, datasets.Dataset) and len(ds) == 0:  # a stream's length is unknown
        raise HfclsError(f"{where}: the {kind} source has no samples")
    return ds
