"""CIFAR-10/100 from the python pickle batches as distributed by the University of Toronto.

`root` is the folder holding `cifar-10-batches-py/` or `cifar-100-python/` (or
that folder itself). Each batch is a pickled dict: `data`, an N x 3072 uint8
array (1024 red, 1024 green, 1024 blue values of a 32x32 image, row by row),
and its labels. Batches are read one at a time into PNG rows of an Arrow file, with an unpickler
that admits only what the format holds (hfcls.unpickle): a crafted batch runs nothing.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from hfcls.data.formats.common import cached_dataset, check_label, png_sample
from hfcls.data.formats.fallback import hub_fallback
from hfcls.errors import HfclsError, did_you_mean
from hfcls.unpickle import NUMPY_ARRAYS, UnsafePickle, load_plain

# The class names of the archives' meta files, for the Hub copies (whose CIFAR-100
# names differ: "cra" for "crab").
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_FINE = """apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly
    camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur
    dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard
    lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear
    pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark
    shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone
    television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm""".split()
CIFAR100_COARSE = """aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices
    household_furniture insects large_carnivores large_man-made_outdoor_things large_natural_outdoor_scenes
    large_omnivores_and_herbivores medium_mammals non-insect_invertebrates people reptiles small_mammals trees
    vehicles_1 vehicles_2""".split()

CIFAR10 = {
    "folder": "cifar-10-batches-py",
    "meta": "batches.meta",
    "splits": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    "hub": "uoft-cs/cifar10",
    "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
}
CIFAR100 = {
    "folder": "cifar-100-python",
    "meta": "meta",
    "splits": {"train": ["train"], "test": ["test"]},
    "hub": "uoft-cs/cifar100",
    "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}


def cifar10(root: str, split: str = "train"):
    """CIFAR-10, `split` train (data_batch_1..5) or test (test_batch)."""
    return _cifar(
        "cifar10",
        CIFAR10,
        root,
        split,
        labels_key="labels",
        names_key="label_names",
        hub_label="label",
        hub_classes=CIFAR10_CLASSES,
    )


def cifar100(root: str, split: str = "train", labels: str = "fine"):
    """CIFAR-100, `split` train or test; `labels` fine (100 classes) or coarse (20 superclasses)."""
    if labels not in ("fine", "coarse"):
        hint = did_you_mean(labels, ["fine", "coarse"])
        raise HfclsError(f"cifar100: labels must be fine or coarse, got {labels!r}{hint}")
    return _cifar(
        "cifar100",
        CIFAR100,
        root,
        split,
        labels_key=f"{labels}_labels",
        names_key=f"{labels}_label_names",
        hub_label=f"{labels}_label",
        hub_classes=CIFAR100_FINE if labels == "fine" else CIFAR100_COARSE,
    )


def _cifar(
    kind: str, layout: dict, root: str, split: str, labels_key: str, names_key: str, hub_label: str, hub_classes: list
):
    if split not in layout["splits"]:
        raise HfclsError(f"{kind}: split must be one of {', '.join(layout['splits'])}, got {split!r}")
    folder = _batches_folder(Path(root), layout)
    if folder is None:
        return hub_fallback(
            kind,
            f"{Path(root) / layout['folder']}",
            layout["hub"],
            split,
            hub_label,
            hub_classes,
            files_hint=f"the extracted {layout['url'].rsplit('/', 1)[1]} ({layout['url']})",
        )
    names = _class_names(folder / layout["meta"], names_key)
    files = [folder / name for name in layout["splits"][split]]
    for file in files:
        if not file.is_file():
            raise HfclsError(f"{kind}: batch file {file} is missing; re-extract {layout['url'].rsplit('/', 1)[1]}")
    return cached_dataset(
        _cifar_samples,
        {"files": [str(f) for f in files], "labels_key": labels_key, "names": tuple(names)},
        names,
        files=files + [folder / layout["meta"]],
        key={"kind": kind, "labels": labels_key},
    )


def _batches_folder(root: Path, layout: dict) -> Path | None:
    for folder in (root / layout["folder"], root):
        if (folder / layout["meta"]).is_file():
            return folder
    return None


def _class_names(meta_file: Path, names_key: str) -> list:
    meta = unpickle(meta_file)
    if names_key not in meta:
        raise HfclsError(f"{meta_file} is not a CIFAR meta file: no {names_key!r} among {sorted(meta)}")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key]]


def _cifar_samples(files: list, labels_key: str, names: list):
    for file in files:
        images, labels = read_batch(Path(file), labels_key)
        for index, (pixels, label) in enumerate(zip(images, labels)):
            check_label(int(label), names, f"{file} image {index}", "the CIFAR meta file")
            yield png_sample(pixels, label)


def read_batch(file: Path, labels_key: str) -> tuple:
    """(N x 32 x 32 x 3 uint8 images, N labels) from one pickled CIFAR batch."""
    batch = unpickle(file)
    if "data" not in batch or labels_key not in batch:
        raise HfclsError(f"{file} is not a CIFAR batch: it has keys {sorted(batch)}, not data and {labels_key}")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise HfclsError(f"{file} is not a CIFAR batch: data is {data.dtype} {data.shape}, not N x 3072 uint8")
    labels = list(batch[labels_key])
    if len(labels) != len(data):
        raise HfclsError(f"{file}: {len(data)} images but {len(labels)} labels; re-extract the archive")
    if not len(data):
        raise HfclsError(f"{file} holds no images; re-extract the archive")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def unpickle(file: Path) -> dict:
    """A pickled dict with str keys (the originals are Python 2 pickles with bytes keys).

    Only what a CIFAR batch holds is admitted (dicts, lists, str/bytes, numbers, numpy
    arrays): a pickle that asks for anything else is refused before it can run.
    """
    try:
        content = load_plain(file.read_bytes(), NUMPY_ARRAYS, encoding="bytes")
    except UnsafePickle as error:
        raise HfclsError(
            f"{file} is not a plain CIFAR file: {error}; nothing of it was run. Use the files of the original archive"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as error:
        raise HfclsError(f"{file} is not a CIFAR batch (cannot unpickle it: {error}); re-extract the archive") from None
    if not isinstance(content, dict):
        raise HfclsError(f"{file} is not a CIFAR batch: it holds a {type(content).__name__}, not a dict")
    return {key.decode() if isinstance(key, bytes) else key: value for key, value in content.items()}
