"""Generate the benchmark data sets (offline, from scikit-learn's bundled photos).

    python benchmarks/make_data.py jpeg-folder data/bench/jpeg --classes 10 --per-class 100
    python benchmarks/make_data.py cifar-pickle data/bench/cifar --count 50000

`jpeg-folder`: an ImageNet-like `train/` and `val/` image folder of ~500x375
real-photo JPEGs (random crops, flips and scales of `load_sample_images`).
`cifar-pickle`: CIFAR-10's python layout (`data_batch_1..5`, `test_batch`,
`batches.meta`) of 32x32 crops of the same photos, 10,000 images per batch file.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
from PIL import Image


def _photos() -> list:
    from sklearn.datasets import load_sample_images

    return [Image.fromarray(image) for image in load_sample_images().images]


def _random_view(photos, rng, size) -> Image.Image:
    """A random crop (40-100 % of the photo's shorter side), maybe flipped, resized to `size` (w, h)."""
    photo = photos[rng.integers(len(photos))]
    width, height = photo.size
    aspect = size[0] / size[1]
    crop_h = int(min(height, width / aspect) * rng.uniform(0.4, 1.0))
    crop_w = int(crop_h * aspect)
    left, top = rng.integers(0, width - crop_w + 1), rng.integers(0, height - crop_h + 1)
    view = photo.crop((left, top, left + crop_w, top + crop_h)).resize(size, Image.BILINEAR)
    return view.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else view


def jpeg_folder(root, classes=10, per_class=100, val_per_class=20, seed=0) -> int:
    """root/{train,val}/class_<k>/<i>.jpg, landscape 500x375 or portrait 375x500."""
    rng, photos, count = np.random.default_rng(seed), _photos(), 0
    for split, n in (("train", per_class), ("val", val_per_class)):
        for k in range(classes):
            folder = Path(root) / split / f"class_{k:03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                size = (500, 375) if rng.random() < 0.75 else (375, 500)
                _random_view(photos, rng, size).save(folder / f"{i:05d}.jpg", quality=90)
                count += 1
    return count


def cifar_pickle(root, count=50_000, test_count=10_000, seed=0, per_file=10_000) -> int:
    """CIFAR-10's python pickles: dicts with b"data" (N x 3072 uint8, CHW rows) and b"labels"."""
    rng, photos = np.random.default_rng(seed), _photos()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    files = [(f"data_batch_{i + 1}", per_file) for i in range(-(-count // per_file))]
    files[-1] = (files[-1][0], count - per_file * (len(files) - 1))
    for name, n in files + [("test_batch", test_count)]:
        data = np.stack(
            [np.asarray(_random_view(photos, rng, (32, 32))).transpose(2, 0, 1).reshape(-1) for _ in range(n)]
        )
        labels = rng.integers(0, 10, n).tolist()
        with open(root / name, "wb") as f:
            pickle.dump(
                {
                    b"batch_label": name.encode(),
                    b"labels": labels,
                    b"data": data,
                    b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
                },
                f,
            )
    names = [f"class_{k}".encode() for k in range(10)]
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_cases_per_batch": per_file, b"num_vis": 3072}, f)
    return count + test_count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    jpeg = sub.add_parser("jpeg-folder")
    jpeg.add_argument("root")
    jpeg.add_argument("--classes", type=int, default=10)
    jpeg.add_argument("--per-class", type=int, default=100)
    jpeg.add_argument("--val-per-class", type=int, default=20)
    cifar = sub.add_parser("cifar-pickle")
    cifar.add_argument("root")
    cifar.add_argument("--count", type=int, default=50_000)
    cifar.add_argument("--test-count", type=int, default=10_000)
    args = parser.parse_args(argv)
    if args.kind == "jpeg-folder":
        n = jpeg_folder(args.root, args.classes, args.per_class, args.val_per_class)
    else:
        n = cifar_pickle(args.root, args.count, args.test_count)
    print(f"wrote {n} images to {args.root}")


if __name__ == "__main__":
    main()
