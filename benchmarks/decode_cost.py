"""Milliseconds per image of the one decode rule and of the train pipeline after it, in one process.

    python benchmarks/decode_cost.py RECIPE [key=value ...] [--images 200]

What `hfcls-prepare shrink` buys: run it on the recipe's source, then with
`data.train={type: disk, path: DST/train}`. The files are read before timing, so
only decoding and transforming are measured (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import statistics
import time

import datasets
import torch

from hfcls.data.build import build_datasets
from hfcls.data.decode import decode, image_bytes
from hfcls.data.transforms import build_pipeline
from hfcls.recipe import load_recipe


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value")
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_intermixed_args(argv)
    recipe = load_recipe(args.recipe, args.overrides)
    torch.set_num_threads(1)  # as in a DataLoader worker
    train = build_datasets(recipe.data, recipe.seed, ("train",))["train"]
    rows = train.cast_column("image", datasets.Image(decode=False)).select(range(min(args.images, len(train))))
    files = [{"bytes": image_bytes(image)} for image in rows["image"]]
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


if __name__ == "__main__":
    main()
