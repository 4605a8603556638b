"""Milliseconds per image of the one decode rule and of the train pipeline after it, in one process.

    python benchmarks/decode_cost.py RECIPE [key=value ...] [--images 200]
    python benchmarks/decode_cost.py RECIPE [key=value ...] --worker [--sides 224,192,160] [--images 320]
    python benchmarks/decode_cost.py RECIPE [key=value ...] --scales [--images 320]

What `hfcls-prepare shrink` buys: run it on the recipe's source, then with
`data.train={type: disk, path: DST/train}`. The files are read before timing, so
only decoding and transforming are measured (benchmarks/README.md).

--worker: the CPU milliseconds per image of a DataLoader worker's whole job (the Arrow read, each
sample's seed, reading the file, decoding, the train pipeline, the batch's collate), as the
training loader runs it (`SeededSamples` over the data door's transform), with data.scaled_decode
off and train, at each RandomResizedCrop side of --sides (progressive resizing's), interleaved, best
of 3 turns; and how many images each decoded at 1/2, 1/4 or 1/8.

--scales: the CPU milliseconds per image of decoding alone, whole (torchvision, as hfcls decodes a
JPEG at full scale; Pillow) and at each DCT scale Pillow's draft offers: what scaled decoding can
save at most, whatever the crop, because the entropy decoding of the whole file stays.
"""

from __future__ import annotations

import argparse
import collections
import io
import statistics
import time

import datasets
import torch
from PIL import Image

from hfcls.data.build import build_datasets, with_transform
from hfcls.data.decode import decode, image_bytes
from hfcls.data.seeding import sample_seed
from hfcls.data.transforms import build_pipeline
from hfcls.recipe import load_recipe


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--worker", action="store_true", help="a worker's whole CPU time per image")
    parser.add_argument("--sides", default="224,192,160", help="--worker: RandomResizedCrop sides")
    parser.add_argument("--scales", action="store_true", help="decoding alone, whole and at each DCT scale")
    args = parser.parse_intermixed_args(argv)
    recipe = load_recipe(args.recipe, args.overrides)
    torch.set_num_threads(1)  # as in a DataLoader worker
    if args.worker:
        return worker_cost(recipe, args.images, [int(side) for side in args.sides.split(",")])
    train = build_datasets(recipe.data, recipe.seed, ("train",))["train"]
    rows = train.cast_column("image", datasets.Image(decode=False)).select(range(min(args.images, len(train))))
    files = [{"bytes": image_bytes(image)} for image in rows["image"]]
    if args.scales:
        return scale_cost([file["bytes"] for file in files])
    pipeline = build_pipeline(recipe.data.train_pipeline)
    decoding, transforming, sides = [], [], []
    for file in files:
        start = time.perf_counter()
        image = decode(file, recipe.data.to_rgb)
        decoded = time.perf_counter()
        pipeline(image)
        decoding.append(decoded - start)
        transforming.append(time.perf_counter() - decoded)
        sides.append(min(image.shape[-2:]))
    kib = statistics.mean(len(file["bytes"]) for file in files) / 1024
    decode_ms, pipeline_ms = 1000 * statistics.median(decoding), 1000 * statistics.median(transforming)
    print(
        f"{len(files)} images, median shorter side {statistics.median(sides):.0f} px, {kib:.0f} KiB each: "
        f"decode {decode_ms:.2f} ms, train pipeline {pipeline_ms:.2f} ms per image (medians, one thread)"
    )


def worker_cost(recipe, images: int, sides: list) -> None:
    from hfcls.data.decode import collate, fitting_scale
    from hfcls.data.seeding import SeededSamples, seeded

    train = build_datasets(recipe.data, recipe.seed, ("train",))["train"]
    train = train.select(range(min(images, len(train))))
    loaders = {}
    for mode in ("off", "train"):
        dataset = with_transform(
            train, recipe.data.train_pipeline, "data.train_pipeline", recipe.data.to_rgb, scaled=mode != "off"
        )
        loaders[mode] = SeededSamples(dataset, recipe.seed)
    batch = recipe.data.batch_size

    def epoch(samples, side):
        def run():
            samples.set_resolution(side)
            for first in range(0, len(train) - batch + 1, batch):
                collate(samples.__getitems__(list(range(first, first + batch))))
            return len(train) // batch * batch

        return run

    results = best_cpu_ms({(side, mode): epoch(samples, side) for side in sides for mode, samples in loaders.items()})
    rows = train.cast_column("image", datasets.Image(decode=False))
    sizes = [Image.open(io.BytesIO(image_bytes(image))).size for image in rows["image"]]
    crop = build_pipeline(recipe.data.train_pipeline).transforms[0]
    for side in sides:
        crop.size = [side, side]
        scales = collections.Counter(
            fitting_scale(*seeded(box_and_out, sample_seed(recipe.seed, 0, i), crop, w, h, side))
            for i, (w, h) in enumerate(sizes)
        )
        off, on = results[side, "off"], results[side, "train"]
        print(
            f"side {side}: worker CPU {off:.3f} ms/image with data.scaled_decode=off, {on:.3f} with train "
            f"({100 * (on / off - 1):+.0f} %); epoch 0's images by scale: "
            + ", ".join(f"1/{scale}: {count}" for scale, count in sorted(scales.items()))
        )


def scale_cost(files: list) -> None:
    from torchvision.io import decode_jpeg

    def pillow(scale):
        def run(data):
            image = Image.open(io.BytesIO(data))
            if scale > 1:
                image.draft("RGB", (image.width // scale, image.height // scale))
            image.load()

        return run

    def every_file(way):
        def run():
            for data in files:
                way(data)
            return len(files)

        return run

    ways = {"header only (Pillow)": lambda data: Image.open(io.BytesIO(data)).size}
    ways["whole, torchvision (hfcls's)"] = lambda data: decode_jpeg(
        torch.frombuffer(bytearray(data), dtype=torch.uint8)
    )
    ways.update({f"1/{scale}, Pillow" if scale > 1 else "whole, Pillow": pillow(scale) for scale in (1, 2, 4, 8)})
    best = best_cpu_ms({name: every_file(way) for name, way in ways.items()})
    kib = statistics.mean(len(data) for data in files) / 1024
    print(f"{len(files)} JPEGs of {kib:.0f} KiB, CPU ms per image to decode, best of 3 turns, one thread:")
    for name, spent in best.items():
        print(f"  {name:30} {spent:.3f}")


def best_cpu_ms(runs: dict, turns: int = 3) -> dict:
    """{key: the least CPU milliseconds per image over `turns`} of callables that do their work and
    return how many images it was; the turns are interleaved, so that a load that drifts weighs on
    every variant alike."""
    best = {}
    for _ in range(turns):
        for key, run in runs.items():
            start = time.process_time()
            images = run()
            spent = 1000 * (time.process_time() - start) / images
            best[key] = min(best.get(key, spent), spent)
    return best


def box_and_out(crop, width: int, height: int, side: int) -> tuple:
    params = crop.make_params([torch.empty(3, height, width)])
    return (params["height"], params["width"]), (side, side)


if __name__ == "__main__":
    main()
