"""`hfcls-browse RECIPE [key.sub=value ...] --split train --n 16 --out grid.png`: what the model sees.

Each sample after its split's pipeline (train augmentations or eval
resize/crop), before normalisation, titled with its class name, as
MMClassification's browse_dataset shows them.
"""

from __future__ import annotations

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, cli_entry, heavy_imports
from hfcls.cli.types import output_file
from hfcls.recipe import load_recipe


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-browse", description=__doc__.splitlines()[0], epilog=RECIPE_RUNS_CODE)
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="recipe overrides (YAML-typed)")
    parser.add_argument("--split", default="train", choices=("train", "val", "test"))
    parser.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    parser.add_argument("--columns", type=int, help="grid columns (default: a square grid)")
    parser.add_argument("--out", type=output_file, default="grid.png", help="output image file (default grid.png)")
    parser.add_overwrite("--out")
    return parser.check_outputs(parser.parse_intermixed_args(argv))  # overrides may follow the options


@cli_entry(flags={"n": "--n", "columns": "--columns"})
def main(argv=None):
    args = parse_args(argv)
    recipe = load_recipe(args.recipe, args.overrides)
    with heavy_imports():
        from hfcls.data.browse import browse

    drawn = browse(recipe, args.split, args.n, args.out, args.columns)
    print(f"saved {drawn} {args.split} samples to {args.out}")


if __name__ == "__main__":
    main()
