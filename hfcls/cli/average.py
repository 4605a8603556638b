"""`hfcls-average CKPT CKPT [CKPT ...] OUT [--date] [--ema|--no-ema]`: one model whose weights are the mean of
the checkpoints' (timm's avg_checkpoints.py), published as OUT-<sha256[:8]>.safetensors and a Hugging Face folder."""

from __future__ import annotations

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, add_release_flags, cli_entry, console_and_recipe, heavy_imports


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-average", description=__doc__.splitlines()[0], epilog=RECIPE_RUNS_CODE)
    parser.add_argument("checkpoints", nargs="+", metavar="CKPT", help="two or more artifacts of one architecture")
    add_release_flags(parser, "release/resnet50_avg")
    return parser.check_outputs(parser.parse_args(argv))


@cli_entry(flags={"out": "OUT"})
def main(argv=None):
    args = parse_args(argv)
    with heavy_imports():
        from hfcls.artifacts.average import average_checkpoints

    recipe = console_and_recipe(args.recipe)
    out = average_checkpoints(
        args.checkpoints, args.out, use_ema=args.use_ema, date=args.date, recipe=recipe, overwrite=args.overwrite
    )
    print(f"averaged {len(args.checkpoints)} checkpoints into {out}")


if __name__ == "__main__":
    main()
