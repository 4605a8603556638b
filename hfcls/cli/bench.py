"""`hfcls-bench RECIPE [key=value ...] [--what data|train|eval|accuracy] [options]`: hfcls against what users
would pick instead, in one interleaved run.

--what data|train|eval: images/s of hfcls's own data path, training step or evaluation step, against the
Hugging Face examples' baseline (--baseline) and random on-device batches (--synthetic).
--peers trainer[,timm]: whole training commands of hfcls (workers, in memory), the Hugging Face Trainer and
timm's train.py (--timm-train PATH) on the same work: wall time, time to the first step, steady images/s,
evaluation time, top-1; --what accuracy adds the time to --target top-1. --load N runs N busy processes
against every command (one per core: a shared machine).
"""

from __future__ import annotations

import json

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, cli_entry, heavy_imports
from hfcls.cli.types import comma_separated, non_negative_int, output_file, positive_int
from hfcls.files import write_atomic
from hfcls.recipe import load_recipe

WHAT = ("data", "train", "eval", "accuracy")


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-bench", description=__doc__.splitlines()[0], epilog=RECIPE_RUNS_CODE)
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="recipe overrides (YAML-typed)")
    parser.add_argument(
        "--what",
        choices=WHAT,
        default="train",
        help="data: the train input pipeline only; train: full training steps; eval: inference",
    )
    parser.add_argument("--steps", type=positive_int, default=30, help="measured steps per variant")
    parser.add_argument(
        "--warmup",
        type=non_negative_int,
        default=5,
        help="unmeasured steps at the start of each turn (a fresh loader starting its workers)",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=3,
        help="the measured steps are split into this many turns per variant, interleaved",
    )
    parser.add_argument("--baseline", action="store_true", help="also run the Hugging Face examples' pipeline")
    parser.add_argument(
        "--models",
        type=comma_separated,
        default=[],
        metavar="A,B,...",
        help="--what eval: evaluate these artifacts (folders, .onnx graphs: float32 against int8) in place of the "
        "recipe's model, interleaved",
    )
    parser.add_argument("--synthetic", action="store_true", help="also run on random on-device batches")
    parser.add_argument(
        "--peers",
        type=comma_separated,
        default=[],
        help="compare whole training runs with these tools: trainer, timm (comma-separated)",
    )
    parser.add_argument(
        "--timm-train", metavar="PATH", help="train.py of a pytorch-image-models checkout (--peers timm)"
    )
    parser.add_argument(
        "--load", type=non_negative_int, default=0, metavar="N", help="busy processes competing with every run"
    )
    parser.add_argument(
        "--target", type=float, default=98.0, help="--what accuracy: the validation top-1 to reach (%%)"
    )
    parser.add_argument("--json", type=output_file, metavar="OUT", help="write the results to this JSON file")
    parser.add_overwrite("--json")
    args = parser.check_outputs(parser.parse_intermixed_args(argv))  # overrides may follow the options
    if args.rounds > args.steps:  # each round measures at least one step
        parser.error(f"give --rounds between 1 and --steps; got --rounds {args.rounds} with --steps {args.steps}")
    return args


@cli_entry(flags={"what": "--what", "models": "--models"})
def main(argv=None):
    args = parse_args(argv)
    recipe = load_recipe(args.recipe, args.overrides)
    with heavy_imports():
        from hfcls.logs import setup_logging

    setup_logging(None, is_main=False)  # warnings only: the report is the output
    if args.peers or args.what == "accuracy":
        measured = compare_peers(recipe, args)
    else:
        with heavy_imports():
            from hfcls.bench.throughput import bench, report

        measured = bench(
            recipe,
            args.what,
            steps=args.steps,
            warmup=args.warmup,
            rounds=args.rounds,
            baseline=args.baseline,
            synthetic=args.synthetic,
            models=args.models,
        )
        measured["settings"]["overrides"] = " ".join(args.overrides) or "none"
        print(report(measured["machine"], measured["settings"], measured["results"]))
    if args.json:
        write_atomic(args.json, json.dumps(measured, indent=2))


def compare_peers(recipe, args) -> dict:
    with heavy_imports():
        from hfcls.bench.peers.compare import compare, table
        from hfcls.bench.throughput import machine

    info = machine()
    measured = compare(
        recipe, args.peers, timm_train=args.timm_train, rounds=args.rounds, load=args.load, overrides=args.overrides
    )
    print(
        "machine: {platform}, {cpus} CPUs ({cpu}), torch {torch}, device {device}, load average {load_average[0]} "
        "{load_average[1]} {load_average[2]}".format(**info)
        + f", {args.load} busy processes competing"
    )
    print(table(measured, args.target if args.what == "accuracy" else None))
    return {"machine": info, **measured}


if __name__ == "__main__":
    main()
