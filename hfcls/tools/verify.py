"""`hfcls-verify RECIPE`: decode every image of every split; list unreadable files and bad labels.

Exit status 0 when everything reads, 1 when any image or label is bad (each
listed), 2 when the recipe or its data cannot be loaded at all.
"""

from __future__ import annotations

import argparse
import sys

import datasets
import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from hfcls.data.loaders import build_datasets, decode
from hfcls.errors import cli_entry
from hfcls.recipe import load_recipe

NO_LABEL = -1  # datasets' marker for an unlabeled row (e.g. a test list without labels)


class RowCheck(torch.utils.data.Dataset):
    """Row i -> a description of what is wrong with it, or '' when it decodes and its label fits."""

    def __init__(self, ds: datasets.Dataset, to_rgb: bool):
        self.ds = ds.cast_column("image", datasets.Image(decode=False))
        self.to_rgb = to_rgb
        self.num_classes = ds.features["label"].num_classes

    def __len__(self):
        return len(self.ds)

    def __getitem__(self, index: int) -> str:
        row = self.ds[index]
        name = row["image"].get("path") or f"row {index} (image bytes)"
        try:
            decode(row["image"], self.to_rgb)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
            return f"cannot decode {name}: {error}"
        label = row["label"]
        if label != NO_LABEL and not 0 <= label < self.num_classes:
            return f"{name}: label {label} is outside [0, {self.num_classes})"
        return ""


def verify_split(ds: datasets.Dataset, split: str, to_rgb: bool, workers: int) -> list:
    """Every problem of one split, one line each, in row order."""
    loader = torch.utils.data.DataLoader(RowCheck(ds, to_rgb), batch_size=None, num_workers=workers)
    problems = tqdm(loader, total=len(ds), desc=f"verify {split}", unit="img")
    return [f"{split}: {problem}" for problem in problems if problem]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="hfcls-verify", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="recipe overrides (YAML-typed)")
    parser.add_argument("--workers", type=int, default=0, help="decoding processes (default: this one)")
    return parser.parse_args(argv)


@cli_entry
def cli(argv=None):
    args = parse_args(argv)
    recipe = load_recipe(args.recipe, args.overrides)
    dsets = build_datasets(recipe.data, recipe.seed)
    problems = []
    for split, ds in dsets.items():
        problems += verify_split(ds, split, recipe.data.to_rgb, args.workers)
    for problem in problems:
        print(problem)
    total = sum(len(ds) for ds in dsets.values())
    print(f"{len(problems)} bad of {total} images in {', '.join(dsets)}" if problems else
          f"all {total} images in {', '.join(dsets)} decode and their labels fit the classes")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(cli())
