"""`hfcls-demo IMAGE CHECKPOINT [options]`: classify images with a trained model."""

from __future__ import annotations

from pathlib import Path

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, cli_entry, heavy_imports
from hfcls.cli.types import output_file

# The library's parameters, as this command's flags name them.
FLAGS = {
    "device": "--device",
    "top_k": "--topk",
    "threshold": "--threshold",
    "batch_size": "--batch-size",
    "num_workers": "--num-workers",
    "draw_to": "--out",
}


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-demo", description=__doc__.splitlines()[0], epilog=RECIPE_RUNS_CODE)
    parser.add_argument("image", help="an image file, a folder of images, or a glob (quote it)")
    parser.add_argument(
        "checkpoint",
        help="a best/ or latest/ folder, a checkpoints/epoch_N folder, "
        "or a published .safetensors file (each used on its own)",
    )
    parser.add_argument(
        "--recipe",
        help="the training recipe: needed for a bare .safetensors file; otherwise "
        "its mixed_precision and channels_last apply (default: the run's recipe.yaml)",
    )
    parser.add_argument(
        "--topk",
        type=int,
        help="how many labels to show (default 5; a multi-label model shows "
        "every label scoring at least --threshold, at most --topk when given)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="a multi-label model's sigmoid score for a label to be predicted (default 0.5)",
    )
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: CUDA when available)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2, help="processes decoding images")
    parser.add_argument(
        "--out",
        type=output_file,
        help="preds.csv or preds.json: one row per image (path, top-k labels and scores); "
        "else the image with its prediction drawn on it (a .png file; a new or empty folder when IMAGE is a "
        "folder or glob)",
    )
    parser.add_overwrite("--out")
    args = parser.parse_args(argv)
    drawn_into_folder = args.out is not None and not is_table(args.out) and not Path(args.image).is_file()
    return parser.check_outputs(args, kinds={"out": "folder" if drawn_into_folder else "file"})


def is_table(out: str) -> bool:
    """--out names a predictions table (hfcls.inference.PREDICTION_FILES), not a picture."""
    return Path(out).suffix in (".csv", ".json")


@cli_entry(flags=FLAGS)
def main(argv=None):
    args = parse_args(argv)
    with heavy_imports():
        from hfcls.inference import classify_images, save_predictions
        from hfcls.logs import setup_logging

    setup_logging(None, is_main=True)
    table = args.out is not None and is_table(args.out)
    results = classify_images(
        args.image,
        args.checkpoint,
        recipe=args.recipe,
        device=args.device,
        top_k=args.topk,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        draw_to=None if table else args.out,
        threshold=args.threshold,
    )
    if table:
        save_predictions(results, args.out)
    for file, predictions in results:
        print(file)
        for rank, p in enumerate(predictions, 1):
            print(f"  {rank}. {p['label']}  {p['score']:.4f}")
        if not predictions:
            print(f"  no label scores {args.threshold} or more")
    if args.out:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
