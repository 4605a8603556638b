"""`hfcls-publish IN OUT [--date] [--ema|--no-ema]`: a release file whose name carries its own hash.

IN is any model artifact (a checkpoints/epoch_N folder, best/, latest/, a
.safetensors file). Written: OUT-<sha256[:8]>.safetensors, self-describing
(config, class names, preprocessing in its metadata), and a Hugging Face
folder of the same name.
"""

from __future__ import annotations

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, add_release_flags, cli_entry, console_and_recipe, heavy_imports


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-publish", description=__doc__.splitlines()[0], epilog=RECIPE_RUNS_CODE)
    parser.add_argument(
        "source", metavar="IN", help="a checkpoints/epoch_N folder, a Hugging Face folder or a .safetensors file"
    )
    add_release_flags(parser, "release/resnet50_in1k")
    return parser.check_outputs(parser.parse_args(argv))


@cli_entry(flags={"out": "OUT"})
def main(argv=None):
    args = parse_args(argv)
    with heavy_imports():
        from hfcls.artifacts.publish import publish

    recipe = console_and_recipe(args.recipe)
    print(publish(args.source, args.out, date=args.date, use_ema=args.use_ema, recipe=recipe, overwrite=args.overwrite))


if __name__ == "__main__":
    main()
