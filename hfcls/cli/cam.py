"""`hfcls-cam IMAGE CHECKPOINT [--method gradcam|gradcam++|scorecam|eigencam] [--target-class C] [--layer NAME] --out cam.png`:
where the model looked, as a heat map over the image."""

from __future__ import annotations

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, cli_entry, console_and_recipe, heavy_imports
from hfcls.cli.types import output_file

METHODS = ("gradcam", "gradcam++", "scorecam", "eigencam")  # hfcls.analysis.cam.METHODS, without importing torch


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-cam", description=__doc__.splitlines()[0], epilog=RECIPE_RUNS_CODE)
    parser.add_argument("image", help="an image file")
    parser.add_argument(
        "checkpoint", help="a best/ or latest/ folder, a checkpoints/epoch_N folder or a published .safetensors file"
    )
    parser.add_argument("--method", choices=METHODS, default="gradcam")
    parser.add_argument("--target-class", help="the class to explain, by name or index (default: the predicted one)")
    parser.add_argument(
        "--layer",
        help="the module to read, by name as in print(model) (default: the last feature map of the model type)",
    )
    parser.add_argument("--recipe", help="the training recipe, for a bare .safetensors file")
    parser.add_argument("--out", type=output_file, default="cam.png", help="the picture to write (default cam.png)")
    parser.add_overwrite("--out")
    return parser.check_outputs(parser.parse_args(argv))


@cli_entry(flags={"method": "--method", "layer": "--layer", "target_class": "--target-class"})
def main(argv=None):
    args = parse_args(argv)
    with heavy_imports():
        from hfcls.analysis.cam import class_activation_map, save_overlay

    recipe = console_and_recipe(args.recipe)
    result = class_activation_map(
        args.image, args.checkpoint, method=args.method, target_class=args.target_class, layer=args.layer, recipe=recipe
    )
    print(f"{args.method} of class {result.label} (score {result.score:.4f}) at {result.layer}")
    print(f"wrote {save_overlay(result, args.out)}")


if __name__ == "__main__":
    main()
