"""`hfcls-verify RECIPE [key.sub=value ...]`: decode every image of every split; list unreadable files and bad labels.

Exit status 0 when everything reads, 1 when any image or label is bad (each
listed), 2 when the recipe or its data cannot be loaded at all.
"""

from __future__ import annotations

import sys

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, cli_entry, heavy_imports
from hfcls.recipe import load_recipe


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-verify", description=__doc__.splitlines()[0], epilog=RECIPE_RUNS_CODE)
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="recipe overrides (YAML-typed)")
    parser.add_argument("--workers", type=int, default=0, help="decoding processes (default: this one)")
    return parser.parse_intermixed_args(argv)  # overrides may follow the options


@cli_entry(flags={"workers": "--workers"})
def main(argv=None):
    args = parse_args(argv)
    recipe = load_recipe(args.recipe, args.overrides)
    with heavy_imports():
        from hfcls.data.verify import verify_datasets

    problems, total, splits = verify_datasets(recipe, args.workers)
    for problem in problems:
        print(problem)
    print(
        f"{len(problems)} bad of {total} images in {', '.join(splits)}"
        if problems
        else f"all {total} images in {', '.join(splits)} decode and their labels fit the classes"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
