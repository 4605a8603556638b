"""An image folder whose labels a metadata file lists, as datasets' `imagefolder` reads them:
`metadata.jsonl` or `metadata.csv` in the folder, one image per row, its `file_name`
relative to the folder.

- `labels`: every class the image shows (multi-label): a JSON list, or in a CSV cell the
  class names joined by `labels_sep` (quote the cell when that is a comma).
- `label`: the one class of the image.

Class names are the sorted names the file uses, unless `classes` lists them (a list or
a text file): then a name outside it is an error naming the file and line, and so is a
row without classes unless the source sets `allow_empty: true`.

What cannot be read honestly is refused, naming the file and line: an image listed twice
(it would be trained and evaluated twice), a file_name that leads out of the folder
(absolute, or through ..), and a class name holding a line break or control character or, in a
`labels` list, the `labels_sep` that separates names in a CSV cell.
"""

from __future__ import annotations

import csv
import json
import os
import unicodedata
from pathlib import Path

import datasets

from hfcls.data.formats.common import check_label_set, check_listed_once, class_ids, image_features, leads_out
from hfcls.errors import HfclsError

METADATA_FILES = ("metadata.jsonl", "metadata.csv")


def metadata_file(folder: Path) -> Path | None:
    found = [folder / name for name in METADATA_FILES if (folder / name).is_file()]
    if len(found) > 1:
        raise HfclsError(f"{folder} holds both {' and '.join(METADATA_FILES)}; keep one")
    return found[0] if found else None


def metadata_images(file: Path, names: list | None, origin: str, labels_sep: str, allow_empty: bool):
    """The folder's images with the labels `file` lists; `origin` says where `names` came from."""
    rows = list(_jsonl_rows(file, labels_sep) if file.suffix == ".jsonl" else _csv_rows(file, labels_sep))
    if not rows:
        raise HfclsError(f"{file} lists no images; an empty split cannot be used")
    multi_label = isinstance(rows[0][1], list)
    if names is None:
        names = sorted({name for _, labels, _ in rows for name in (labels if multi_label else [labels])})
        origin = f"the labels of {file}"
    index = {name: i for i, name in enumerate(names)}
    paths, labels, listed = [], [], {}
    for path, row_labels, line in rows:
        where = f"{file} line {line}"
        check_inside(path, file.parent, where, "file_name")
        image = file.parent / path
        check_listed_once(os.path.normpath(path), line, listed, where)
        if not image.is_file():
            raise HfclsError(f"{where}: image {image} does not exist; fix file_name or add the image")
        ids = class_ids(row_labels if multi_label else [row_labels], index, where, origin)
        if multi_label:
            check_label_set(ids, names, where, origin, allow_empty)
        paths.append(str(image.resolve()))
        labels.append(ids if multi_label else ids[0])
    return datasets.Dataset.from_dict({"image": paths, "label": labels}, features=image_features(names, multi_label))


def _jsonl_rows(file: Path, labels_sep: str):
    """(file_name, labels list or one label, line) per non-blank line."""
    kind = None
    for number, text in enumerate(file.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as error:
            raise HfclsError(
                f"{file} line {number}: not a JSON object ({error.msg}); write one object per line, "
                'e.g. {"file_name": "0001.png", "labels": ["cat", "dog"]}'
            ) from None
        kind = _row_kind(row, file, number, kind)
        labels = row[kind]
        if kind == "labels" and not (isinstance(labels, list) and all(isinstance(n, (str, int)) for n in labels)):
            raise HfclsError(f"{file} line {number}: labels must be a list of class names, got {labels!r}")
        names = [str(n) for n in labels] if kind == "labels" else [str(labels)]
        check_names(names, labels_sep if kind == "labels" else None, f"{file} line {number}")
        yield str(row["file_name"]), names if kind == "labels" else names[0], number


def _csv_rows(file: Path, labels_sep: str):
    kind = None
    with open(file, newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            kind = _row_kind(row, file, reader.line_num, kind)
            text = row[kind].strip()
            labels = [n.strip() for n in text.split(labels_sep) if n.strip()] if kind == "labels" else text
            check_names(labels if kind == "labels" else [labels], None, f"{file} line {reader.line_num}")
            yield row["file_name"], labels, reader.line_num


def check_names(names: list, labels_sep: str | None, where: str) -> None:
    """A class name holds no line break or control character (a CSV cell quoted across lines, a stray
    tab), nor, in a `labels` list, the `labels_sep` that joins several names: either is a mistake
    that would otherwise become a class of its own."""
    for name in names:
        if any(unicodedata.category(c) == "Cc" for c in name):
            raise HfclsError(
                f"{where}: the class name {name!r} holds a line break or control character; a "
                "name is one line of text: close every quote in a CSV file, or fix the label"
            )
        if labels_sep and labels_sep in name:
            raise HfclsError(
                f"{where}: the class name {name!r} holds {labels_sep!r}, which separates class "
                "names (labels_sep); list each class as its own entry of labels"
            )


def check_inside(path: str, folder: Path, where: str, field: str) -> None:
    """Refuse a listed path that leads out of `folder`: absolute, or climbing out through `..`."""
    if leads_out(path):
        raise HfclsError(
            f"{where}: {field} {path} leads out of {folder}; name the image by its path inside that folder"
        )


def _row_kind(row, file: Path, line: int, kind: str | None) -> str:
    """'labels' or 'label': which field holds the row's classes, the same on every row."""
    if not isinstance(row, dict) or "file_name" not in row:
        raise HfclsError(f"{file} line {line}: no file_name field; each row names its image as file_name")
    found = [name for name in ("labels", "label") if row.get(name) is not None]
    if len(found) != 1:
        raise HfclsError(
            f"{file} line {line}: give each row a labels field (a list of classes) or a label field "
            f"(one class), not {' and '.join(found) or 'neither'}"
        )
    if kind is not None and found[0] != kind:
        raise HfclsError(
            f"{file} line {line}: a {found[0]} field where the rows above have {kind}; give every row the same one"
        )
    return found[0]
