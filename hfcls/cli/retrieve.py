"""`hfcls-retrieve QUERY... CHECKPOINT --gallery FOLDER|RECIPE:split`: the gallery images most like each query.

Similarity is the cosine of the features the model's head reads. The gallery's features are computed once
and kept beside CHECKPOINT (CHECKPOINT.gallery/); an index that the model or the gallery's images have
outgrown is refused until --overwrite rebuilds it.
"""

from __future__ import annotations

import argparse

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, add_ema_flags, cli_entry, console_and_recipe, heavy_imports
from hfcls.cli.types import non_negative_int, output_file, positive_int

# The library's parameters, as this command's flags name them.
FLAGS = {
    "gallery": "--gallery",
    "top_k": "--topk",
    "out": "--out",
    "device": "--device",
    "batch_size": "--batch-size",
    "num_workers": "--num-workers",
}


def parse_args(argv=None):
    parser = CommandParser(
        prog="hfcls-retrieve",
        description=__doc__.splitlines()[0],
        epilog=RECIPE_RUNS_CODE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("queries", nargs="+", metavar="QUERY", help="an image file, a folder of images or a glob")
    parser.add_argument(
        "checkpoint",
        help="a best/ or latest/ folder, a checkpoints/epoch_N folder or a published .safetensors file",
    )
    parser.add_argument(
        "--gallery",
        required=True,
        metavar="FOLDER|RECIPE:split",
        help="the images to search: a folder (every file below it), or a recipe's split, e.g. recipe.yaml:train "
        "(whose labels the matches then show)",
    )
    parser.add_argument("--topk", type=positive_int, default=5, help="matches per query (default 5)")
    parser.add_argument("--out", type=output_file, help="matches.csv (one row per match) or matches.json")
    parser.add_argument(
        "--overwrite", action="store_true", help="rebuild a gallery index that is out of date, and replace --out"
    )
    parser.add_argument("--recipe", help="the training recipe: needed for a bare .safetensors file")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: CUDA when available)")
    parser.add_argument("--batch-size", type=positive_int, default=32)
    parser.add_argument("--num-workers", type=non_negative_int, default=2, help="processes decoding images")
    add_ema_flags(parser)
    return parser.check_outputs(parser.parse_args(argv))


@cli_entry(flags=FLAGS)
def main(argv=None):
    args = parse_args(argv)
    with heavy_imports():
        from hfcls.inference import check_matches_path, retrieve_images, save_matches

    recipe = console_and_recipe(args.recipe)
    if args.out is not None:
        check_matches_path(args.out, args.overwrite)
    results = retrieve_images(
        args.queries,
        args.checkpoint,
        args.gallery,
        recipe=recipe,
        device=args.device,
        top_k=args.topk,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        use_ema=args.use_ema,
        overwrite=args.overwrite,
    )
    for query, matches in results:
        print(query)
        for rank, match in enumerate(matches, 1):
            label = f"  ({match['label']})" if "label" in match else ""
            print(f"  {rank}. {match['similarity']:.4f}  {match['image']}{label}")
    if args.out is not None:
        print(f"wrote {save_matches(results, args.out)}")


if __name__ == "__main__":
    main()
