"""Small copies of the dataset layouts hfcls reads, written the way the originals are.

Each writer returns what it wrote, so tests can compare pixels and labels exactly.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from hfcls.data.formats.cifar import CIFAR10_CLASSES as CIFAR10_NAMES  # the names batches.meta holds


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """N x 32 x 32 x 3 -> N x 3072 rows: all red values, then green, then blue."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def write_pickle(path: Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(content, handle)


def write_cifar10(root: Path, per_batch: int = 3, seed: int = 0) -> dict:
    """root/cifar-10-batches-py with 5 train batches and a test batch, bytes keys as in the
    original Python 2 pickles. Returns {split: (images, labels)}."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    write_pickle(folder / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_NAMES]})
    written = {"train": ([], []), "test": ([], [])}
    for name, split in [(f"data_batch_{i}", "train") for i in range(1, 6)] + [("test_batch", "test")]:
        images = rng.integers(0, 256, size=(per_batch, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        write_pickle(
            folder / name,
            {
                b"batch_label": name.encode(),
                b"data": cifar_rows(images),
                b"labels": labels,
                b"filenames": [b"x.png"] * per_batch,
            },
        )
        written[split][0].append(images)
        written[split][1].extend(labels)
    return {split: (np.concatenate(images), labels) for split, (images, labels) in written.items()}


def write_cifar100(root: Path, count: int = 6, seed: int = 0) -> dict:
    """root/cifar-100-python/{train,test,meta}, str keys (as pickled by Python 3).
    Returns {split: (images, fine labels, coarse labels)} and the names under "names"."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    fine = [f"fine{i:02d}" for i in range(100)]
    coarse = [f"coarse{i:02d}" for i in range(20)]
    write_pickle(folder / "meta", {"fine_label_names": fine, "coarse_label_names": coarse})
    written = {"names": (fine, coarse)}
    for split in ("train", "test"):
        images = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
        fine_labels = rng.integers(0, 100, size=count).tolist()
        coarse_labels = rng.integers(0, 20, size=count).tolist()
        write_pickle(
            folder / split, {"data": cifar_rows(images), "fine_labels": fine_labels, "coarse_labels": coarse_labels}
        )
        written[split] = (images, fine_labels, coarse_labels)
    return written


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx-ubyte file: magic 0x000008<dims>, big-endian uint32 sizes, then the values."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist(root: Path, counts=(12, 6), gz: bool = False, seed: int = 0) -> dict:
    """root/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]. Returns {split: (images, labels)}."""
    rng = np.random.default_rng(seed)
    written = {}
    for (split, prefix), count in zip((("train", "train"), ("test", "t10k")), counts):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count).astype(np.uint8)
        write_idx(root / f"{prefix}-images-idx3-ubyte", images, gz)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels, gz)
        written[split] = (images, labels.tolist())
    return written


def write_images(folder: Path, names: list, images: np.ndarray, suffix: str) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, pixels in zip(names, images):
        path = folder / f"{name}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def write_imagenet(
    root: Path, wnids=("n01440764", "n01443537", "n01484850"), per_class: int = 3, flat_val: bool = True, seed: int = 0
) -> dict:
    """root/train/<wnid>/*.png, root/val flat (or in class folders), root/meta/{train,val}.txt
    and meta/synsets.txt as caffe's get_ilsvrc_aux.sh writes them. PNG, so pixels compare exactly.
    Returns {split: [(relative path, label, pixels)]}."""
    rng = np.random.default_rng(seed)
    written = {"train": [], "val": []}
    for label, wnid in enumerate(wnids):
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
            relative = f"{wnid}/{wnid}_{i}.png"
            write_images(root / "train", [relative[:-4]], [pixels], ".png")
            written["train"].append((relative, label, pixels))
            pixels = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
            relative = f"ILSVRC2012_val_{label * per_class + i:08d}.png"
            if not flat_val:
                relative = f"{wnid}/{relative}"
            write_images(root / "val", [relative[:-4]], [pixels], ".png")
            written["val"].append((relative, label, pixels))
    (root / "meta").mkdir(parents=True, exist_ok=True)
    for split, entries in written.items():
        (root / "meta" / f"{split}.txt").write_text("".join(f"{path} {label}\n" for path, label, _ in entries))
    (root / "meta" / "synsets.txt").write_text("".join(f"{wnid}\n" for wnid in wnids))
    return written


def save_numbered(
    path: Path, count: int = 16, shards: int = 2, names=("cat", "dog", "fox"), grey_step: int = 10
) -> datasets.Dataset:
    """A save_to_disk dataset in `shards` files whose row i has a 4x4 image of grey level grey_step * i and
    label i % 3: the number survives decoding, so a test can tell which rows a loader read."""
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(names))})
    pixels = [np.full((4, 4, 3), grey_step * i, np.uint8) for i in range(count)]
    ds = datasets.Dataset.from_dict({"image": pixels, "label": [i % 3 for i in range(count)]}, features=features)
    ds.save_to_disk(str(path), num_shards=shards)
    return ds


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """A datasets cache per test: no test reuses another's Arrow files, ~/.cache stays clean."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")
    return tmp_path / "hf-datasets-cache"


def numbered_stream_recipe(tmp_path: Path, count: int = 16, shards: int = 2, grey_step: int = 10, **data):
    """A Recipe that trains on a stream of save_numbered's rows, with identity transforms and no val split;
    `data` sets the rest of its data section."""
    from hfcls.recipe import recipe_from_dict

    from conftest import tiny_recipe_dict

    save_numbered(tmp_path / "saved", count, shards, grey_step=grey_step)
    train = {"type": "disk", "path": str(tmp_path / "saved"), "streaming": True}
    data = {"train": train, "val": None, "batch_size": 4, "train_pipeline": [], **data}
    return recipe_from_dict(tiny_recipe_dict(None, None, data=data))


def bad_splits_recipe(tmp_path) -> tuple:
    """(recipe path, val folder): a train split with label 7 of 3 classes in row 1, and a truncated val PNG
    (dog/1.png). A cast does not check the range: such a label reaches disk and only hfcls-verify notices."""
    from conftest import make_image_folder, tiny_recipe_dict, write_recipe

    val = make_image_folder(tmp_path / "val", per_class=2)
    (val / "dog" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    pixels = [np.full((4, 4, 3), value, np.uint8) for value in (0, 100, 200)]
    saved = datasets.Dataset.from_dict({"image": pixels, "label": [0, 7, 2]}, features=features)
    saved.cast_column("label", datasets.ClassLabel(names=["cat", "dog", "fox"])).save_to_disk(str(tmp_path / "saved"))
    recipe = tiny_recipe_dict(None, val, data={"train": {"type": "disk", "path": str(tmp_path / "saved")}})
    return write_recipe(tmp_path / "r.yaml", recipe), val


# ----------------------------------------------------------------------------- images Pillow does not write


def _png(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def png_16bit(pixels: np.ndarray) -> bytes:
    """A 16-bit PNG of H x W (grey) or H x W x 3 (RGB) uint16 pixels; Pillow writes only the grey kind."""
    import zlib

    rgb = pixels.ndim == 3
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)  # filter 0 on every row
    return _png(pixels.shape[1], pixels.shape[0], 16, 2 if rgb else 0, zlib.compress(rows))


def png_header_only(width: int, height: int) -> bytes:
    """A few hundred bytes claiming width x height RGB pixels: what the pixel limit must stop unread."""
    import zlib

    return _png(width, height, 8, 2, zlib.compress(b"\x00" * 64))


VOC_OBJECTS = {  # image id -> [(class, difficult)]
    "000001": [("dog", 0), ("person", 0)],
    "000002": [("cat", 0), ("cat", 1), ("chair", 1)],  # chair: only difficult
    "000003": [("bird", 1)],  # nothing but a difficult bird
}


def write_voc(root: Path, objects: dict = VOC_OBJECTS, split: str = "trainval") -> Path:
    """A PASCAL VOC 2007 folder: JPEGImages/, Annotations/<id>.xml, ImageSets/Main/<split>.txt."""
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i, (image_id, objs) in enumerate(objects.items()):
        Image.fromarray(np.full((10, 12, 3), 40 * i, dtype=np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        body = "".join(
            f"\n  <object>\n    <name>{name}</name>\n    <pose>Left</pose>\n"
            f"    <difficult>{hard}</difficult>\n  </object>"
            for name, hard in objs
        )
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation>\n  <folder>VOC2007</folder>\n  <filename>{image_id}.jpg</filename>{body}\n</annotation>\n"
        )
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(objects) + "\n")
    return root


def add_to_checkpoint(checkpoint: Path, name: str, tensors: dict) -> Path:
    """Save `tensors` as checkpoint/name and list it in hfcls_state.json, as a save that wrote it would."""
    import json

    from safetensors.torch import save_file

    from hfcls.artifacts.checkpoint import STATE_FILE

    save_file(tensors, checkpoint / name)
    state = json.loads((checkpoint / STATE_FILE).read_text())
    state["files"][name] = (checkpoint / name).stat().st_size
    (checkpoint / STATE_FILE).write_text(json.dumps(state))
    return checkpoint / name
