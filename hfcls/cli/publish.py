"""`hfcls-publish IN OUT [--date] [--ema|--no-ema]`: a release file whose name carries its own hash.

IN is any model artifact (a checkpoints/epoch_N folder, best/, latest/, a
.safetensors file). Written: OUT-<sha256[:8]>.safetensors, self-describing
(config, class names, preprocessing in its metadata), and a Hugging Face
folder of the same name.
"""

from __future__ import annotations

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, add_ema_flags, cli_entry, console_and_recipe, heavy_imports
from hfcls.cli.types import output_stem


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-publish", description=__doc__.splitlines()[0], epilog=RECIPE_RUNS_CODE)
    parser.add_argument(
        "source", metavar="IN", help="a checkpoints/epoch_N folder, a Hugging Face folder or a .safetensors file"
    )
    parser.add_argument(
        "out", metavar="OUT", type=output_stem, help="output path without the hash, e.g. release/resnet50_in1k"
    )
    parser.add_argument("--date", action="store_true", help="name it OUT_<YYYYMMDD>-<hash> (MMClassification's form)")
    parser.add_argument("--recipe", help="the training recipe, for a bare .safetensors file")
    parser.add_overwrite("an OUT-<hash> file and folder")
    add_ema_flags(parser)
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
