"""`hfcls-flops RECIPE [--shape H W] [--num-classes N] [--per-layer [--depth D]]`: a model's FLOPs and parameters."""

from __future__ import annotations

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, cli_entry, heavy_imports
from hfcls.recipe import load_recipe


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-flops", description=__doc__.splitlines()[0], epilog=RECIPE_RUNS_CODE)
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument(
        "--shape",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        help="input height and width (default: the eval pipeline's output size)",
    )
    parser.add_argument("--num-classes", type=int, default=1000, help="size of the head (default 1000)")
    parser.add_argument("--per-layer", action="store_true", help="also print a table by module")
    parser.add_argument("--depth", type=int, default=4, help="module nesting shown by --per-layer (default 4)")
    return parser.parse_args(argv)


@cli_entry(flags={"shape": "--shape", "num_classes": "--num-classes"})
def main(argv=None):
    args = parse_args(argv)
    recipe = load_recipe(args.recipe)
    with heavy_imports():
        from hfcls.analysis.flops import count_params, model_flops, per_layer_table, summary
        from hfcls.logs import setup_logging

    setup_logging(None, is_main=True)  # results on stdout; library progress bars off
    model, shape, counter = model_flops(recipe, args.shape, args.num_classes)
    print(summary(shape, counter.get_total_flops(), count_params(model)))
    if args.per_layer:
        print(per_layer_table(model, counter, args.depth))


if __name__ == "__main__":
    main()
