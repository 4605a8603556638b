"""`hfcls-lr RECIPE [key.sub=value ...] [--num-processes N] --out lr.png`: the LR at every step of a recipe, without training."""

from __future__ import annotations

from pathlib import Path

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, cli_entry, heavy_imports
from hfcls.cli.types import output_file
from hfcls.recipe import load_recipe


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-lr", description=__doc__.splitlines()[0], epilog=RECIPE_RUNS_CODE)
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="recipe overrides (YAML-typed)")
    parser.add_argument("--num-processes", type=int, default=1, help="processes training together (default 1)")
    parser.add_argument("--out", type=output_file, default="lr.png", help="the picture to write (default lr.png)")
    parser.add_overwrite("--out")
    return parser.check_outputs(parser.parse_intermixed_args(argv))


@cli_entry(flags={"num_processes": "--num-processes"})
def main(argv=None):
    args = parse_args(argv)
    recipe = load_recipe(args.recipe, args.overrides)
    with heavy_imports():
        from hfcls.analysis.lr import lr_schedule, plot_lr, steps_per_epoch
        from hfcls.logs import setup_logging

    setup_logging(None, is_main=False)
    per_epoch = steps_per_epoch(recipe, args.num_processes)
    rates = lr_schedule(recipe, args.num_processes, per_epoch)
    print(
        f"{len(rates)} steps ({recipe.train.epochs} epochs x {per_epoch}): lr {rates[0]:.4g} at the first, "
        f"{max(rates):.4g} at most, {rates[-1]:.4g} at the last"
    )
    print(f"wrote {plot_lr(rates, per_epoch, args.out, Path(args.recipe).stem)}")


if __name__ == "__main__":
    main()
