"""`hfcls-bench RECIPE [key=value ...] [--what data|train|eval] [options]`: images/s of hfcls's own
data path, training step or evaluation, against the Hugging Face examples' baseline, in one run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hfcls.cli import RECIPE_RUNS_CODE, cli_entry
from hfcls.recipe import load_recipe

WHAT = ("data", "train", "eval")  # hfcls.analysis.bench.WHAT, without importing torch to parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="hfcls-bench", description=__doc__.splitlines()[0],
                                     epilog=RECIPE_RUNS_CODE)
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="recipe overrides (YAML-typed)")
    parser.add_argument("--what", choices=WHAT, default="train",
                        help="data: the train input pipeline only; train: full training steps; eval: inference")
    parser.add_argument("--steps", type=int, default=30, help="measured steps per variant")
    parser.add_argument("--warmup", type=int, default=5,
                        help="unmeasured steps at the start of each turn (a fresh loader starting its workers)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="the measured steps are split into this many turns per variant, interleaved")
    parser.add_argument("--baseline", action="store_true", help="also run the Hugging Face examples' pipeline")
    parser.add_argument("--synthetic", action="store_true", help="also run on random on-device batches")
    parser.add_argument("--json", metavar="OUT", help="write the results to this JSON file")
    args = parser.parse_intermixed_args(argv)  # overrides may follow the options
    if args.steps < 1 or args.warmup < 0 or not 1 <= args.rounds <= args.steps:
        parser.error("--steps must be at least 1, --warmup at least 0, --rounds between 1 and --steps")
    return args


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    recipe = load_recipe(args.recipe, args.overrides)
    from hfcls.analysis.bench import bench, report
    from hfcls.logs import setup_logging

    setup_logging(None, is_main=False)  # warnings only: the report is the output
    measured = bench(recipe, args.what, steps=args.steps, warmup=args.warmup, rounds=args.rounds,
                     baseline=args.baseline, synthetic=args.synthetic)
    measured["settings"]["overrides"] = " ".join(args.overrides) or "none"
    print(report(measured["machine"], measured["settings"], measured["results"]))
    if args.json:
        Path(args.json).write_text(json.dumps(measured, indent=2))


if __name__ == "__main__":
    main()
