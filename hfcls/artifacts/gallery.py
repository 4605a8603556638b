"""Gallery indexes for image retrieval: the features of a gallery's images, computed once and kept beside the
model artifact they came from.

    <artifact>.gallery/<name>-<hash>/   beside best/, checkpoints/epoch_N, model-1a2b3c4d.safetensors, ...
      features.safetensors            `features` (N, D) float32: the input of the model's head for each image;
                                      `labels` (N,) when the gallery is a labelled recipe split
      index.json                      what it was built from: the gallery as given, the model's weights (sha256)
                                      and preprocessing, every image with its size and modification time (a
                                      recipe row without a file: its bytes' digest), those skipped as undecodable,
                                      the class names of a labelled gallery

A gallery is a folder (every file below it) or a recipe's split, RECIPE.yaml:split. An index is used while the
model, its preprocessing and the gallery's images are what it was built from; otherwise it is refused, naming
what changed, and replaced only when asked (`overwrite`). It is written whole or not at all (hfcls.files).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from hfcls.artifacts.weights import file_sha256, inspect_artifact, weights_file
from hfcls.errors import HfclsError
from hfcls.files import folder_written
from hfcls.version import __version__

logger = logging.getLogger(__name__)

FEATURES_FILE = "features.safetensors"
INDEX_FILE = "index.json"
SPLITS = ("train", "val", "test")
REBUILD = "pass overwrite=True (hfcls-retrieve --overwrite) to rebuild it"


@dataclass
class GallerySource:
    """A gallery's images as the index lists them: `names` (file paths, or split[row] for an image without
    a file), the `images` to compute features of, and labels with class names when the gallery has them."""

    spec: str  # as given
    key: str  # its absolute form, whose hash names the index
    title: str  # the folder's name, or <recipe>_<split>: the readable part of the index's name
    names: list
    images: object  # a sequence of paths or PIL images, read lazily
    labels: list | None = None
    class_names: list | None = None
    digests: dict | None = None  # row name -> digest of the bytes, for rows without a file

    def listing(self) -> list:
        """[name, size, stamp] of every image: stamp the modification time in ns, or a row's content digest."""
        return [self.stamp(name) for name in self.names]

    def stamp(self, name: str) -> list:
        if self.digests and name in self.digests:
            return [name, None, self.digests[name]]
        status = Path(name).stat()
        return [name, status.st_size, status.st_mtime_ns]


@dataclass
class GalleryIndex:
    folder: Path
    features: object  # (N, D) float32 tensor
    names: list
    labels: object | None  # (N,) int64 tensor
    class_names: list | None

    def check_width(self, width: int) -> None:
        """The model's features are `width` wide: an index of another width was built by another model."""
        if self.features.shape[1] != width:
            raise HfclsError(
                f"gallery index {self.folder} holds features {self.features.shape[1]} wide, the model gives "
                f"{width}: it was built by another model; {REBUILD}"
            )

    def match(self, row: int, similarity: float) -> dict:
        """One retrieved gallery image: its name, similarity and (labelled galleries) class."""
        found = {"image": self.names[row], "similarity": similarity}
        if self.labels is not None:
            found["label"] = self.class_names[int(self.labels[row])]
        return found


def gallery_source(spec: str) -> GallerySource:
    """FOLDER or RECIPE.yaml:split as the images of a gallery."""
    recipe, colon, split = str(spec).rpartition(":")
    if colon and Path(recipe).suffix in (".yaml", ".yml"):
        if split not in SPLITS:
            raise HfclsError(f"gallery {spec}: split {split!r} is none of {', '.join(SPLITS)}", param="gallery")
        return recipe_gallery(spec, Path(recipe), split)
    folder = Path(spec)
    if not folder.is_dir():
        raise HfclsError(
            f"gallery {spec}: {'a file, not a folder' if folder.exists() else 'no such folder'}; pass a folder of images or RECIPE.yaml:split (train, val or test)",
            param="gallery",
        )
    files = sorted(str(p) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise HfclsError(
            f"gallery {spec}: the folder holds no image files; put the images to search in it", param="gallery"
        )
    return GallerySource(str(spec), str(folder.resolve()), folder.resolve().name, files, files)


def recipe_gallery(spec: str, recipe_path: Path, split: str) -> GallerySource:
    """A recipe's split: its image files (a row stored as bytes by its row number and digest) and labels."""
    import datasets

    from hfcls.data.build import build_split, class_names
    from hfcls.data.images import dataset_files
    from hfcls.recipe import load_recipe

    recipe = load_recipe(recipe_path)
    dataset = build_split(recipe.data, recipe.seed, split)
    files = dataset_files(dataset)
    names = [file or f"{split}[{row}]" for row, file in enumerate(files)]
    raw = dataset.cast_column("image", datasets.Image(decode=False))
    digests = {
        names[row]: hashlib.sha256(raw[row]["image"]["bytes"]).hexdigest()[:16]
        for row, file in enumerate(files)
        if file is None
    }
    labelled = isinstance(dataset.features["label"], datasets.ClassLabel) and min(dataset["label"]) >= 0
    return GallerySource(
        spec,
        f"{recipe_path.resolve()}:{split}",
        f"{recipe_path.stem}_{split}",
        names,
        RowImages(dataset, files),
        list(dataset["label"]) if labelled else None,
        class_names(dataset) if labelled else None,
        digests,
    )


class RowImages:
    """A dataset's images by row: the file's path where it has one, else the decoded image."""

    def __init__(self, dataset, files: list):
        self.dataset, self.files = dataset, files

    def __len__(self):
        return len(self.files)

    def __getitem__(self, row: int):
        return self.files[row] or self.dataset[row]["image"]


# ----------------------------------------------------------------------------- the index


def index_folder(artifact, source: GallerySource) -> Path:
    """Where the index of `source` for `artifact` lives: <artifact>.gallery/<name>-<hash of the gallery>."""
    path = Path(inspect_artifact(artifact).path)
    title = re.sub(r"[^\w.-]+", "_", source.title) or "gallery"
    return path.with_name(path.name + ".gallery") / f"{title}-{hashlib.sha256(source.key.encode()).hexdigest()[:8]}"


def model_identity(artifact, use_ema: bool | None, processor: dict) -> dict:
    """What the features depend on: the weights file's hash and the preprocessing (as index.json holds it)."""
    return {
        "weights_sha256": file_sha256(weights_file(artifact, use_ema)),
        "preprocessor": json.loads(json.dumps(processor)),
    }


def gallery_index(spec: str, artifact, use_ema, processor: dict, extract, overwrite: bool = False) -> GalleryIndex:
    """The index of gallery `spec` for the model `artifact` (its EMA choice and preprocessing `processor`):
    read when it is there and current, else built with `extract(images) -> (features, kept rows)` and saved.
    One that is out of date is refused unless `overwrite`."""
    source = gallery_source(spec)
    folder = index_folder(artifact, source)
    identity = model_identity(artifact, use_ema, processor)
    if (folder / INDEX_FILE).is_file() and not overwrite:
        built = read_built(folder)
        check_current(folder, built, identity, source)
        return read_index(folder, built)
    logger.info("indexing gallery %s (%d images) into %s", spec, len(source.names), folder)
    features, kept = extract(source.images)
    if not kept:
        raise HfclsError(
            f"gallery {spec}: none of its {len(source.names)} files could be read as an image", param="gallery"
        )
    built = {
        "gallery": source.spec,
        "key": source.key,
        **identity,
        "images": source.listing(),
        "indexed": kept,
        "class_names": source.class_names,
        "hfcls_version": __version__,
    }
    labels = None if source.labels is None else [source.labels[row] for row in kept]
    write_index(folder, features, labels, built)
    return read_index(folder, built)


def read_built(folder: Path) -> dict:
    """index.json, its image listing checked (every row [name, size, stamp], every indexed row one of them)."""
    try:
        built = json.loads((folder / INDEX_FILE).read_text())
    except (OSError, ValueError) as error:
        raise HfclsError(f"gallery index {folder} is damaged ({error}); {REBUILD}") from None
    built = built if isinstance(built, dict) else {}
    images, indexed = built.get("images"), built.get("indexed")
    if not isinstance(images, list) or not all(isinstance(row, list) and len(row) == 3 for row in images):
        raise HfclsError(
            f"gallery index {folder} is damaged: {INDEX_FILE} lists no [name, size, stamp] rows; {REBUILD}"
        )
    if not isinstance(indexed, list) or not all(isinstance(row, int) and 0 <= row < len(images) for row in indexed):
        raise HfclsError(
            f"gallery index {folder} is damaged: {INDEX_FILE} names indexed rows that are not rows of its "
            f"{len(images)} images; {REBUILD}"
        )
    return built


def check_current(folder: Path, built: dict, identity: dict, source: GallerySource) -> None:
    """Refuse an index built by another model or preprocessing, or from other images, naming what changed."""
    if built.get("weights_sha256") != identity["weights_sha256"]:
        raise HfclsError(
            f"gallery index {folder} is stale: it was built with other weights (sha256 "
            f"{str(built.get('weights_sha256'))[:8]}, these are {identity['weights_sha256'][:8]}); {REBUILD}"
        )
    if built.get("preprocessor") != identity["preprocessor"]:
        raise HfclsError(f"gallery index {folder} is stale: it was built with other preprocessing; {REBUILD}")
    before = {name: (size, stamp) for name, size, stamp in built.get("images", [])}
    now = {name: (size, stamp) for name, size, stamp in source.listing()}
    added = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    changed = sorted(name for name in set(now) & set(before) if now[name] != before[name])
    if added or removed or changed:
        example = (added or removed or changed)[0]
        raise HfclsError(
            f"gallery index {folder} is stale: since it was built {len(added)} images were added, "
            f"{len(removed)} removed and {len(changed)} changed in {source.spec} (e.g. {example}); {REBUILD}"
        )


def read_index(folder: Path, built: dict) -> GalleryIndex:
    """The index in `folder`, its parts checked against each other: a row without a name, a name without a
    features row or a label without a class would match queries to the wrong images."""
    from hfcls.artifacts.weights import read_safetensors

    try:
        tensors = read_safetensors(folder / FEATURES_FILE)
    except HfclsError as error:
        raise HfclsError(f"gallery index {folder} is damaged ({error}); {REBUILD}") from None
    features, labels, class_names = tensors.get("features"), tensors.get("labels"), built.get("class_names")
    problem = tensors_problem(features, labels, class_names, len(built["indexed"]))
    if problem:
        raise HfclsError(f"gallery index {folder} is damaged: {problem}; {REBUILD}")
    names = [built["images"][row][0] for row in built["indexed"]]
    return GalleryIndex(folder, features, names, labels, class_names)


def tensors_problem(features, labels, class_names, indexed: int) -> str | None:
    """What makes an index's tensors disagree with its `indexed` images and class names, or None."""
    if features is None or features.dim() != 2 or features.shape[0] != indexed:
        shape = None if features is None else tuple(features.shape)
        return f"{FEATURES_FILE} holds features of shape {shape} for {indexed} indexed images"
    if labels is not None and (
        labels.shape != (indexed,)
        or not isinstance(class_names, list)
        or (len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(class_names))
    ):
        return f"its labels (shape {tuple(labels.shape)}) do not fit its {indexed} images and its class names"
    return None


def write_index(folder: Path, features, labels: list | None, built: dict) -> None:
    """features.safetensors and index.json into `folder`, swapped in whole."""
    import torch
    from safetensors.torch import save_file

    with folder_written(
        folder, f"gallery index {folder}", "an earlier index there is intact; free some space (or fix the permissions)"
    ) as tmp:
        tensors = {"features": features.float().contiguous()}
        if labels is not None:
            tensors["labels"] = torch.tensor(labels, dtype=torch.long)
        save_file(tensors, tmp / FEATURES_FILE)
        (tmp / INDEX_FILE).write_text(json.dumps(built, indent=1))
