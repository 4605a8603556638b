"""`hfcls-browse RECIPE --split train --n 16 --out grid.png`: transformed samples with their class names.

What the model sees, as MMClassification's browse_dataset shows it: each image
after the split's pipeline (train augmentations or eval resize/crop), before
normalisation, titled with its class name.
"""

from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import datasets
import torch

from hfcls.data.loaders import attach_transforms, build_datasets, class_names
from hfcls.errors import HfclsError, cli_entry
from hfcls.recipe import load_recipe


def sample_grid(ds, names: list, n: int, out: str, columns: int | None = None) -> int:
    """Save `n` transformed samples of `ds` (a dataset or a stream) as one image;
    return how many were drawn."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    if isinstance(ds, datasets.Dataset):
        # A seeded spread over the whole split, not its first rows (often all one class).
        order = torch.randperm(len(ds))[:n].sort().values.tolist()
        samples = [ds[i] for i in order]
    else:  # a stream: its first samples, already shuffled by its buffer
        samples = list(itertools.islice(iter(ds), n))
    count = len(samples)
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2 * columns, 2.2 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for sample, axis in zip(samples, axes.flat):
        axis.imshow(sample["pixel_values"].permute(1, 2, 0).numpy(), cmap="gray")
        label = sample["labels"]
        title = names[label] if label >= 0 else "(no label)"
        axis.set_title(title if sample["valid"] else f"UNREADABLE {sample['file']}", fontsize=8)
    figure.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return count


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="hfcls-browse", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="recipe overrides (YAML-typed)")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"))
    parser.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    parser.add_argument("--columns", type=int, help="grid columns (default: a square grid)")
    parser.add_argument("--out", default="grid.png", help="output image file (default grid.png)")
    return parser.parse_args(argv)


@cli_entry
def cli(argv=None):
    args = parse_args(argv)
    if args.n < 1:
        raise HfclsError(f"--n must be at least 1, got {args.n}")
    recipe = load_recipe(args.recipe, args.overrides)
    dsets = build_datasets(recipe.data, recipe.seed)
    if args.split not in dsets:
        raise HfclsError(f"{args.recipe} defines no {args.split} data; splits: {', '.join(dsets)}")
    names = class_names(dsets[args.split])
    torch.manual_seed(recipe.seed)  # the same augmentations on every run
    ds = attach_transforms(dsets, recipe.data)[args.split]
    drawn = sample_grid(ds, names, args.n, args.out, args.columns)
    print(f"saved {drawn} {args.split} samples to {args.out}")


if __name__ == "__main__":
    cli()
