"""`hfcls-export CHECKPOINT OUT.onnx [--opset N] [--dynamic-batch] [--fp16 | --quantize int8]`: an ONNX graph, proven against PyTorch.

CHECKPOINT is any artifact the reader knows. After the export, onnxruntime and
PyTorch run the same images (the eval split of the run's recipe, or --images);
the command prints the largest logit difference and both top-1s, and fails
(writing nothing) beyond the tolerance hfcls.artifacts.onnx explains.
--quantize int8 writes the int8 graph instead (dynamic quantization for
transformers, static with calibration images from the recipe's train split for
conv nets), proven against the float32 graph within the bound
hfcls.artifacts.quantize explains; CHECKPOINT may then be a float32 .onnx file.
"""

from __future__ import annotations

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, add_ema_flags, cli_entry, console_and_recipe, heavy_imports
from hfcls.cli.types import output_file


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-export", description=__doc__.splitlines()[0], epilog=RECIPE_RUNS_CODE)
    parser.add_argument(
        "checkpoint",
        help="a best/ or latest/ folder, a checkpoints/epoch_N folder or a .safetensors file "
        "(with --quantize, also a float32 .onnx file from hfcls-export)",
    )
    parser.add_argument("out", metavar="OUT", type=output_file, help="the .onnx file to write")
    parser.add_argument(
        "--opset", type=int, default=18, help="ONNX opset (default 18, what torch's exporter implements)"
    )
    parser.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: batches of 1)")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="float16 weights and input")
    precision.add_argument(
        "--quantize",
        choices=("int8",),
        help="int8: quantized with onnxruntime (dynamic for transformers, static for conv nets, calibrated on "
        "the recipe's train images), written only if it agrees with the float32 graph (top-1 on 97%% of the "
        "images, accuracy at most 1 point lower)",
    )
    parser.add_argument(
        "--images", help="validate on these images (a file, folder or quoted glob) instead of the eval split"
    )
    parser.add_argument("--split", choices=("val", "test"), default="val", help="the recipe's split to validate on")
    parser.add_argument(
        "--limit",
        type=int,
        default=256,
        help="validate on at most this many images, spread over the split (default 256)",
    )
    parser.add_argument(
        "--recipe", help="the training recipe (default: the run's recipe.yaml); a bare .safetensors file needs it"
    )
    add_ema_flags(parser)
    parser.add_overwrite("OUT")
    return parser.check_outputs(parser.parse_args(argv))


@cli_entry(flags={"opset": "--opset", "limit": "--limit", "quantize": "--quantize", "images": "--images"})
def main(argv=None):
    args = parse_args(argv)
    with heavy_imports():
        from hfcls.artifacts.onnx import export_onnx

    recipe = console_and_recipe(args.recipe)
    out, check = export_onnx(
        args.checkpoint,
        args.out,
        opset=args.opset,
        dynamic_batch=args.dynamic_batch,
        fp16=args.fp16,
        images=args.images,
        split=args.split,
        limit=args.limit,
        use_ema=args.use_ema,
        recipe=recipe,
        overwrite=args.overwrite,
        quantize=args.quantize,
    )
    print(check.summary())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
