"""What the file-format readers share: class lists, PNG samples, cached Arrow builds."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import datasets
import numpy as np
from datasets.exceptions import DatasetGenerationError
from PIL import Image

from hfcls.errors import HfclsError, did_you_mean

# Part of every cache key: bump it when a reader's output changes so that old
# caches are rebuilt instead of reused.
FORMAT_VERSION = 1


def image_features(names: list, multi_label: bool = False) -> datasets.Features:
    """image + label: one ClassLabel, or for multi-label data a List of them."""
    label = datasets.ClassLabel(names=names)
    return datasets.Features({"image": datasets.Image(), "label": datasets.List(label) if multi_label else label})


def read_text(path, what: str) -> str:
    """A text file the user wrote (a list, class names) as UTF-8, a leading BOM dropped."""
    try:
        return Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        raise HfclsError(
            f"{what} {path} line {line}: not UTF-8 text (byte 0x{error.object[error.start]:02x}); "
            "save it as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None


def shown(name) -> str:
    """A file name as it can be printed: bytes that are not UTF-8 written as \\xNN."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def check_utf8_name(path, where: str) -> None:
    """Refuse a file name that is not UTF-8: Arrow tables and printed results cannot hold it."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise HfclsError(
            f"{where}: the file name {shown(path)} is not UTF-8; rename it (e.g. convmv -f latin1 -t utf-8)"
        ) from None


def class_folder_images(folder: Path, extensions) -> dict:
    """{class folder name: its image file names, sorted} for `folder/<class>/<image>`.

    Refuses what would otherwise be dropped or misread without a word: an empty class
    folder, images beside the class folders, a folder without class folders, names
    that are not UTF-8. Names starting with '.' or '__' are ignored, as datasets does.
    """
    classes, loose = {}, []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        check_utf8_name(entry.path, f"image folder {folder}")
        if entry.name.startswith((".", "__")):
            continue
        if entry.is_dir():
            classes[entry.name] = _folder_images(Path(entry.path), extensions)
        elif os.path.splitext(entry.name)[1].lower() in extensions:
            loose.append(entry.name)
    if not classes:
        raise HfclsError(
            f"image folder {folder} has no class sub-folders; put each image in the folder of its "
            f"class ({folder}/<class>/<image>)"
        )
    if loose:
        raise HfclsError(
            f"image folder {folder}: {shown(loose[0])} (and {len(loose) - 1} more) sit beside the "
            "class folders; move each image into the folder of its class"
        )
    for name, images in classes.items():
        if not images:
            raise HfclsError(
                f"image folder {folder}: class folder {shown(name)} holds no images "
                f"({', '.join(sorted(extensions)[:6])}, ...); add its images or remove the folder"
            )
    return classes


def _folder_images(folder: Path, extensions) -> list:
    images, nested = [], None
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        check_utf8_name(entry.path, f"image folder {folder.parent}")
        if entry.name.startswith((".", "__")):
            continue
        if entry.is_dir():
            nested = nested or entry.name
        elif os.path.splitext(entry.name)[1].lower() in extensions:
            images.append(entry.name)
    if nested is not None:
        raise HfclsError(
            f"image folder {folder.parent}: class folder {shown(folder.name)} holds a folder "
            f"({shown(nested)}); images must sit directly in their class folder"
        )
    return images


def read_classes(classes, where: str) -> list | None:
    """Class names as a recipe gives them: a list, or a text file with one name per line."""
    if classes is None:
        return None
    if isinstance(classes, str):
        path = Path(classes)
        if not path.is_file():
            raise HfclsError(
                f"{where}: classes file {classes} does not exist; give a text file with "
                "one class name per line, or a list of names"
            )
        names = [line.strip() for line in read_text(path, "classes file").splitlines() if line.strip()]
        origin = f"classes file {classes}"
    elif isinstance(classes, list):
        names, origin = [str(c) for c in classes], "the classes list"
    else:
        raise HfclsError(f"{where}: classes must be a list of names or a text file, got {classes!r}")
    if not names:
        raise HfclsError(f"{where}: {origin} names no classes")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise HfclsError(f"{where}: {origin} names {', '.join(repeated[:5])} more than once")
    return names


def png_sample(pixels: np.ndarray, label: int) -> dict:
    """One row: HxW or HxWx3 uint8 pixels as PNG bytes (lossless; decoded by PIL downstream)."""
    buffer = io.BytesIO()
    # Level 1: most of level 6's size at a fraction of its time.
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return {"image": {"bytes": buffer.getvalue(), "path": None}, "label": int(label)}


def cached_dataset(generator, gen_kwargs: dict, names: list, files: list, key: dict) -> datasets.Dataset:
    """Run `generator` once into an Arrow file in the datasets cache; reuse it while `files` are unchanged.

    The cache key hashes the reader's options and each file's path, size and
    modification time, so a second load only stats the files and maps the Arrow file.
    """
    try:
        return datasets.Dataset.from_generator(
            generator,
            features=image_features(names),
            gen_kwargs=gen_kwargs,
            fingerprint=_fingerprint(files, {**key, "names": names}),
        )
    except DatasetGenerationError as error:
        # datasets wraps whatever the generator raised; a reader's own message is the useful one.
        if isinstance(error.__cause__, HfclsError):
            raise error.__cause__ from None
        raise


def _fingerprint(files: list, key: dict) -> str:
    stats = []
    for file in files:
        stat = Path(file).stat()
        stats.append([str(Path(file).resolve()), stat.st_size, stat.st_mtime_ns])
    text = json.dumps({"version": FORMAT_VERSION, "key": key, "files": stats}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def leads_out(path: str) -> bool:
    """A listed path that is absolute, or climbs out of its folder through `..`."""
    parts = Path(os.path.normpath(path)).parts
    return os.path.isabs(path) or (bool(parts) and parts[0] == "..")


def check_listed_once(key: str, line: int, listed: dict, where: str) -> None:
    """Refuse an image a list names a second time: it would be trained and evaluated twice. `listed`
    holds the line where each `key` (a normalised path or an id) was first seen."""
    first = listed.setdefault(key, line)
    if first != line:
        raise HfclsError(
            f"{where}: {key} is listed again (first at line {first}); it would be trained and "
            "evaluated twice: list each image once"
        )


def check_label(label: int, names: list, where: str, origin: str) -> None:
    """A label must index the class list; `origin` says where the class list came from."""
    if not 0 <= label < len(names):
        raise HfclsError(
            f"{where}: label {label} is outside [0, {len(names)}) for the {len(names)} classes "
            f"of {origin}; fix the label or the class list"
        )


def check_label_set(labels: list, names: list, where: str, origin: str, allow_empty: bool) -> None:
    """A multi-label row's class ids: each within the class list, at least one unless `allow_empty`."""
    if not labels and not allow_empty:
        raise HfclsError(
            f"{where}: no labels; list the image's classes, or set allow_empty: true on this source "
            "if images may show none"
        )
    for label in labels:
        check_label(label, names, where, origin)


def class_ids(labels: list, index: dict, where: str, origin: str) -> list:
    """Class names -> ids; a name outside the class list is an error naming `where`."""
    for name in labels:
        if name not in index:
            raise HfclsError(
                f"{where}: label {name!r} is not among the {len(index)} classes of {origin}"
                f"{did_you_mean(name, index)}; fix the label or the class list"
            )
    return [index[name] for name in labels]
