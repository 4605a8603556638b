"""`hfcls-eval RECIPE CHECKPOINT [options]`: test a model on a recipe's val or test split.

Also `accelerate launch -m hfcls.cli.eval RECIPE CHECKPOINT ...` on many processes
(launch/dist_test.sh): every sample counts once, the main process reports.
"""

from __future__ import annotations

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, add_ema_flags, cli_entry, heavy_imports
from hfcls.cli.types import output_file, output_folder
from hfcls.evaluation.results import OUT_ITEMS
from hfcls.metrics import METRIC_NAMES, metric_option
from hfcls.recipe import load_recipe

# The library's parameters, as this command's flags name them.
FLAGS = {
    "batch_size": "--batch-size",
    "out": "--out",
    "out_items": "--out-items",
    "show_dir": "--show-dir",
    "split": "--split",
    "tta": "--tta",
}


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-eval", description=__doc__.splitlines()[0], epilog=RECIPE_RUNS_CODE)
    parser.add_argument("recipe", help="recipe YAML file (data and eval transforms)")
    parser.add_argument(
        "checkpoint",
        help="a best/ or latest/ folder, a checkpoints/epoch_N folder, "
        "a published .safetensors file, or a bare .safetensors (architecture from the recipe)",
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        metavar="NAME",
        default=[],
        help=f"any of: {', '.join(METRIC_NAMES)} (knn: a k-NN classifier on the features, the training split as "
        "its gallery; retrieval: recall@k and mAP@k of the training images ranked by feature similarity)",
    )
    parser.add_argument(
        "--metric-options",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        type=metric_option,
        help="topk=1,5 (default: the recipe's evaluation.topk)  average=macro|micro|none  thrs=0.5[,0.7]  "
        "k=20 temperature=0.07|none (knn: the training images that vote, and their weights exp(similarity/T); "
        "none: one vote each)",
    )
    parser.add_argument("--out", type=output_file, help="results file: .json, .yaml/.yml or .pkl/.pickle")
    parser.add_argument(
        "--out-items",
        nargs="+",
        default=["metrics", "pred"],
        choices=OUT_ITEMS,
        help="what --out holds: metrics, pred (per-sample label, class, score), "
        "class_scores (per-sample scores of every class), features (per-sample pooled features)",
    )
    parser.add_argument(
        "--tta",
        metavar="VIEWS",
        help="test-time augmentation: flip, crops or flip,crops (the class scores averaged over those views)",
    )
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--batch-size", type=int, help="per process (default: data.eval_batch_size or batch_size)")
    add_ema_flags(parser)
    parser.add_argument(
        "--show-dir", type=output_folder, help="write confusion_matrix.png here (a new or empty folder)"
    )
    parser.add_overwrite("an --out file or the files in --show-dir")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="key.sub=value", help="recipe overrides")
    return parser.check_outputs(parser.parse_args(argv))


@cli_entry(flags=FLAGS)
def main(argv=None):
    args = parse_args(argv)
    recipe = load_recipe(args.recipe, args.cfg_options)
    with heavy_imports():
        from hfcls.evaluation.checkpoint import evaluate_checkpoint  # heavy imports once the command line is good
        from hfcls.evaluation.report import format_table
        from hfcls.evaluation.request import EvalRequest
        from hfcls.logs import setup_logging

    request = EvalRequest(
        recipe,
        args.checkpoint,
        split=args.split,
        metrics=args.metrics,
        metric_options=dict(args.metric_options),
        use_ema=args.use_ema,
        batch_size=args.batch_size,
        out=args.out,
        out_items=args.out_items,
        show_dir=args.show_dir,
        tta=args.tta,
        overwrite=args.overwrite,
    )
    setup_logging(None, is_main=True)
    result = evaluate_checkpoint(request)
    if result is None:  # not the main process
        return
    if result.metrics:
        print(format_table(result.metrics, result.class_names))
    for path in result.written:
        print(f"wrote {path}" + (f": {result.samples} samples" if str(path) == str(args.out) else ""))


if __name__ == "__main__":
    main()
