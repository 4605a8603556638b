"""`hfcls-train RECIPE [key.sub=value ...] [options]`: train a recipe (hfcls.api.train).

Under `accelerate launch hfcls/train.py RECIPE ...` every process runs it.
"""

import os
import sys
from pathlib import Path

from hfcls.cli import RECIPE_RUNS_CODE, CommandParser, cli_entry, heavy_imports
from hfcls.cli.types import output_run
from hfcls.recipe import load_recipe, recipe_yaml


def parse_args(argv=None):
    parser = CommandParser(prog="hfcls-train", description=__doc__.splitlines()[0], epilog=RECIPE_RUNS_CODE)
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="recipe overrides (YAML-typed)")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        default=[],
        metavar="key.sub=value",
        help="more recipe overrides, as in MMClassification",
    )
    parser.add_argument(
        "--work-dir",
        type=output_run,
        help="where logs, checkpoints and exports go (default: the recipe's work_dir, else work_dirs/<recipe name>)",
    )
    parser.add_argument("--seed", type=int, help="overrides the recipe's seed")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--resume-from",
        metavar="CKPT",
        help="continue a run: a checkpoints/epoch_N or step_N "
        "folder, or 'auto' for the newest complete checkpoint in the work dir",
    )
    start.add_argument(
        "--resume", dest="resume_from", action="store_const", const="auto", help="same as --resume-from auto"
    )
    start.add_argument(
        "--load-from",
        metavar="CKPT",
        help="start a new run (epoch 0) from these weights only: "
        "a checkpoint or Hugging Face folder, a .safetensors file or a Hub id",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="start the run over where an earlier one left files (killed before its first checkpoint, or "
        "to be trained again): they are moved to WORK_DIR/previous/<time>/, nothing is deleted",
    )
    parser.add_argument("--no-validate", action="store_true", help="skip evaluation during training (not advised)")
    parser.add_argument(
        "--print-recipe",
        action="store_true",
        help="print the resolved recipe (after _base_ and overrides) and exit without training",
    )
    return parser.check_outputs(parser.parse_intermixed_args(argv))  # overrides may follow the options


def merge_args(args):
    """The recipe this command line means: overrides, --seed and --work-dir folded in."""
    overrides = list(args.overrides) + list(args.cfg_options)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.work_dir is not None:
        overrides.append(f"work_dir={args.work_dir}")
    recipe = load_recipe(args.recipe, overrides)
    if recipe.work_dir is None:
        recipe.work_dir = str(Path("work_dirs") / Path(args.recipe).stem)
    return recipe


@cli_entry(flags={"resume_from": "--resume-from", "load_from": "--load-from", "restart": "--restart"})
def main(argv=None):
    args = parse_args(argv)
    recipe = merge_args(args)
    if args.print_recipe:
        print(recipe_yaml(recipe), end="")
        return
    with heavy_imports():
        from hfcls.api import train  # heavy imports after the recipe is known to be valid
        from hfcls.engine.signals import TrainingInterrupted

    try:
        train(
            recipe,
            recipe.work_dir,
            resume_from=args.resume_from,
            validate=not args.no_validate,
            load_from=args.load_from,
            restart=args.restart,
        )
    except TrainingInterrupted as stopped:
        if os.environ.get("RANK", "0") == "0":  # once, not once per process
            print(stopped, file=sys.stderr)
        sys.exit(128 + stopped.signum)  # the shell's convention for "ended by this signal"


if __name__ == "__main__":
    main()
