"""`hfcls-prepare DATASET DIR` | `hfcls-prepare shrink RECIPE DST [key=value ...] --short-side N`: write a data set.

From scikit-learn's bundled digits (offline): digits, class folders; imbalanced_digits, the
same with 2 % of class 0's training images; multilabel_digits, canvases of 2-3 digits side
by side, labelled with the digits shown. shrink: a copy of
the recipe's splits with every image's shorter side at most N pixels, as parquet
shards in DST/<split>/ that a `disk` source reads (`data.train={type: disk, path: DST/train}`).
"""

from __future__ import annotations

import os

from hfcls.cli import CommandParser, cli_entry, heavy_imports
from hfcls.cli.types import int_between, output_folder, positive_int
from hfcls.errors import HfclsError
from hfcls.recipe import load_recipe

DATASETS = {
    "digits": "scikit-learn's digits as an image folder",
    "imbalanced_digits": "the digits with 2%% of class 0's training images",
    "multilabel_digits": "canvases of 2-3 digits, labelled with the digits shown (metadata.jsonl)",
}


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-prepare", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="dataset", required=True, metavar=f"{{{','.join(DATASETS)},shrink}}")
    for name, help in DATASETS.items():
        digits = commands.add_parser(name, help=help)
        digits.add_argument("dir", type=output_folder, help=f"output folder, new or empty, e.g. data/{name}")
        digits.add_argument("--val-fraction", type=float, default=0.2)
        digits.add_argument("--seed", type=int, default=0)
        digits.add_overwrite("DIR (its train/ and val/ are replaced whole)")
    shrink = commands.add_parser(
        "shrink",
        help="a recipe's splits with smaller images, as parquet shards",
        epilog="recipe overrides (key.sub=value, YAML-typed) may follow DST",
    )
    shrink.add_argument("recipe", help="recipe YAML file whose data.train/val/test sources are copied")
    shrink.add_argument("dst", type=output_folder, help="output folder, new or empty: DST/<split>/*.parquet")
    shrink.add_overwrite("DST (the splits written are replaced whole)")
    shrink.add_argument(
        "--short-side", type=positive_int, default=320, help="largest shorter side, pixels (default 320)"
    )
    shrink.add_argument(
        "--quality", type=int_between(1, 100), default=90, help="JPEG quality of resized images (default 90)"
    )
    shrink.add_argument(
        "--splits",
        nargs="+",
        choices=("train", "val", "test"),
        default=["train", "val", "test"],
        help="the recipe's splits to copy, those it defines (default: train val test)",
    )
    shrink.add_argument("--rows-per-shard", type=positive_int, default=1000)
    shrink.add_argument(
        "--workers",
        type=positive_int,
        default=len(os.sched_getaffinity(0)),
        help="processes writing shards (default: this machine's cores)",
    )
    args, rest = parser.parse_known_args(argv)  # overrides may come anywhere after the command
    unknown = [arg for arg in rest if args.dataset != "shrink" or arg.startswith("-") or "=" not in arg]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides = rest
    return parser.check_outputs(args)


@cli_entry(flags={"val_fraction": "--val-fraction"})
def main(argv=None):
    args = parse_args(argv)
    if args.dataset in DATASETS:
        with heavy_imports():
            from hfcls.data.prepare import DATASETS as WRITERS

        counts = WRITERS[args.dataset](args.dir, args.val_fraction, args.seed, overwrite=args.overwrite)
        print(f"wrote {args.dataset} to {args.dir}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
        return
    recipe = load_recipe(args.recipe, args.overrides)
    with heavy_imports():
        from hfcls.data.build import build_datasets
        from hfcls.data.prepare import shrink_splits

    splits = [
        split
        for split in args.splits
        if getattr(recipe.data, split, None) is not None or (split == "val" and recipe.data.train_val_split)
    ]
    if not splits:
        raise HfclsError(
            f"{args.recipe} defines none of data.{', data.'.join(args.splits)}; --splits names the splits to copy"
        )
    written = shrink_splits(
        build_datasets(recipe.data, recipe.seed, tuple(splits)),
        args.dst,
        args.short_side,
        args.quality,
        args.rows_per_shard,
        args.workers,
        overwrite=args.overwrite,
    )
    for split, (images, shards, mib) in written.items():
        print(
            f"wrote {split}: {images} images, shorter side at most {args.short_side}, in {shards} parquet "
            f"shard(s), {mib:.1f} MiB: data.{split}={{type: disk, path: {args.dst}/{split}}}"
        )


if __name__ == "__main__":
    main()
