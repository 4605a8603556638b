"""Image files named by a list or by class folders: `annotation_list` and `imagenet`.

An annotation file has one image per line, `relative/path label` (as
MMClassification's CustomDataset and caffe's `get_ilsvrc_aux.sh` write them), or
`relative/path` alone for an unlabeled test set (label -1, datasets' "no label").
A list is multi-label when a line holds several labels, `relative/path 3,7,12`
(`labels_sep` another separator): every line then lists its classes, and a line
with none is an image without classes, an error unless the source sets
`allow_empty: true`. The rows hold file paths only; images are decoded when
batches are built.
"""

from __future__ import annotations

import os
from pathlib import Path

import datasets

from hfcls.data.formats.common import (
    check_label,
    check_label_set,
    check_listed_once,
    class_folder_images,
    image_features,
    leads_out,
    read_classes,
    read_text,
)
from hfcls.errors import HfclsError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
UNLABELED = -1


def annotation_list(
    ann_file: str,
    data_prefix: str = "",
    classes: list | str | None = None,
    labels_sep: str = ",",
    allow_empty: bool = False,
    allow_outside_prefix: bool = False,
):
    """`data_prefix/<path>` for each `path [label]` or `path label,label,...` line of `ann_file`; class
    names from `classes` (a list or a text file), else 0..max label. A path that leads out of
    `data_prefix` (absolute, or through `..`) is refused unless `allow_outside_prefix: true`."""
    if not labels_sep or labels_sep.isspace() or labels_sep.isdigit():
        raise HfclsError(
            f"annotation_list {ann_file}: labels_sep {labels_sep!r} cannot separate labels; use a "
            "character that is neither a digit nor white space, such as ,"
        )
    return _listed_images(
        ann_file,
        data_prefix,
        read_classes(classes, "annotation_list"),
        f"classes {classes}",
        labels_sep,
        allow_empty,
        allow_outside_prefix,
    )


def imagenet(
    root: str,
    split: str = "train",
    classes: list | str | None = None,
    ann_file: str | None = None,
    allow_outside_prefix: bool = False,
):
    """ImageNet as prepared for MMClassification: `root/{train,val}/`, `root/meta/{train,val}.txt`.

    Images are listed by `ann_file`, else by `root/meta/<split>.txt` when it exists,
    else found in class sub-folders of `root/<split>`. Class names come from
    `classes` (a list or a file such as caffe's synsets.txt), else from the sorted
    class folders of `root/train`, which is the order the caffe lists number. Listed
    paths stay inside `root/<split>` unless `allow_outside_prefix: true`.
    """
    base = Path(root)
    if not base.is_dir():
        raise HfclsError(f"imagenet root {root} does not exist; it should hold train/, val/ and meta/")
    names = read_classes(classes, f"imagenet {root}")
    origin = f"classes {classes}" if names else f"the class folders of {base / 'train'}"
    names = names or _class_folders(base / "train")
    if not names:
        raise HfclsError(
            f"imagenet {root}: no class folders in {base / 'train'} to name the classes; "
            "set classes: to a list or a file such as meta/synsets.txt"
        )
    ann = ann_file or (base / "meta" / f"{split}.txt")
    if ann_file is not None or Path(ann).is_file():
        return _listed_images(ann, base / split, names, origin, allow_outside_prefix=allow_outside_prefix)
    return _folder_images(base / split, names, origin)


def _listed_images(
    ann_file,
    data_prefix,
    names: list | None,
    origin: str,
    labels_sep: str = ",",
    allow_empty: bool = False,
    allow_outside_prefix: bool = False,
) -> datasets.Dataset:
    """`origin` says where `names` came from; without names, classes are numbered 0..max label."""
    entries = read_annotations(ann_file, labels_sep)
    if not allow_outside_prefix:
        check_inside_prefix(entries, ann_file, data_prefix)
    listed = {}
    for path, _, line in entries:
        check_listed_once(os.path.normpath(path), line, listed, f"{ann_file} line {line}")
    labels = [label for _, label, _ in entries]
    multi_label = isinstance(labels[0], list)
    names = names or [
        str(i) for i in range(max(max(label, default=0) if multi_label else label for label in labels) + 1)
    ]
    for _, label, line in entries:
        if multi_label:
            check_label_set(label, names, f"{ann_file} line {line}", origin, allow_empty)
        elif label != UNLABELED:
            check_label(label, names, f"{ann_file} line {line}", origin)
    paths = [os.path.join(os.path.abspath(data_prefix), path) for path, _, _ in entries]
    missing = [(path, line) for path, (_, _, line) in zip(paths, entries) if not os.path.isfile(path)]
    if missing:
        path, line = missing[0]
        more = f" (and {len(missing) - 1} more listed files)" if len(missing) > 1 else ""
        raise HfclsError(
            f"{ann_file} line {line}: image {path} does not exist{more}; check data_prefix ({data_prefix}) or the list"
        )
    return datasets.Dataset.from_dict({"image": paths, "label": labels}, features=image_features(names, multi_label))


def read_annotations(ann_file, labels_sep: str = ",") -> list:
    """[(path, label or -1, line number)] from `path label` or `path` lines; blank lines skipped.
    A multi-label list (a line with several labels) gives each line's list of labels instead."""
    if not Path(ann_file).is_file():
        raise HfclsError(f"annotation file {ann_file} does not exist; check ann_file")
    entries = []
    for number, line in enumerate(read_text(ann_file, "annotation file").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 2:
            raise HfclsError(
                f"{ann_file} line {number}: {len(fields)} fields in {line.strip()!r}; "
                f"expected 'path label', 'path label{labels_sep}label...' or 'path' (no spaces in "
                "paths or between labels)"
            )
        labels = fields[1].split(labels_sep) if len(fields) == 2 else []
        bad = next((label for label in labels if not (label.isascii() and label.isdigit())), None)  # '³'.isdigit()
        if bad is not None:
            raise HfclsError(f"{ann_file} line {number}: label {bad!r} is not a whole number >= 0")
        entries.append((fields[0], [int(label) for label in labels], number))
    if not entries:
        raise HfclsError(f"annotation file {ann_file} lists no images; an empty split cannot be used")
    if any(len(labels) > 1 for _, labels, _ in entries):
        return entries
    entries = [(path, labels[0] if labels else UNLABELED, number) for path, labels, number in entries]
    first_labeled = entries[0][1] != UNLABELED
    odd = next((line for _, label, line in entries if (label != UNLABELED) != first_labeled), None)
    if odd is not None:
        raise HfclsError(
            f"{ann_file} line {odd}: {'no label' if first_labeled else 'a label'} where line "
            f"{entries[0][2]} has {'one' if first_labeled else 'none'}; label every line or none"
        )
    return entries


def check_inside_prefix(entries: list, ann_file, data_prefix) -> None:
    """Refuse a listed path that leads out of data_prefix: absolute, or climbing out through `..`."""
    for path, _, line in entries:
        if leads_out(path):
            prefix = data_prefix or "the current folder"
            raise HfclsError(
                f"{ann_file} line {line}: {path} leads out of data_prefix ({prefix}); list paths "
                "inside it, or set allow_outside_prefix: true for this source"
            )


def _class_folders(folder: Path) -> list:
    if not folder.is_dir():
        return []
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir())


def _folder_images(folder: Path, names: list, origin: str) -> datasets.Dataset:
    if not folder.is_dir():
        raise HfclsError(f"imagenet split folder {folder} does not exist; check root and split")
    if not _class_folders(folder):
        raise HfclsError(
            f"{folder} has no class folders; for a flat folder give its list as "
            f"{folder.parent / 'meta' / (folder.name + '.txt')} or set ann_file"
        )
    images = class_folder_images(folder.resolve(), IMAGE_EXTENSIONS)
    unknown = [name for name in images if name not in names]
    if unknown:
        raise HfclsError(f"{folder}: class folder {unknown[0]} is not among the {len(names)} classes of {origin}")
    paths, labels = [], []
    for name, files in images.items():
        paths += [str(folder.resolve() / name / file) for file in files]
        labels += [names.index(name)] * len(files)
    return datasets.Dataset.from_dict({"image": paths, "label": labels}, features=image_features(names))
