"""Train a recipe: `accelerate launch hfcls/train.py RECIPE [key=value ...] [options]`.

Also `python hfcls/train.py ...` (one process) and the `hfcls-train` command.
"""

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # Run as a script: import hfcls from this checkout, and keep hfcls/'s own
    # modules (data, models, ...) from shadowing top-level packages.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import os  # noqa: E402

from hfcls.errors import cli_entry  # noqa: E402
from hfcls.recipe import load_recipe  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="hfcls-train", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="recipe overrides (YAML-typed)")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="key.sub=value",
                        help="more recipe overrides, as in MMClassification")
    parser.add_argument("--work-dir", help="where logs, checkpoints and exports go "
                        "(default: the recipe's work_dir, else work_dirs/<recipe name>)")
    parser.add_argument("--seed", type=int, help="overrides the recipe's seed")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--resume-from", metavar="CKPT", help="continue a run: a checkpoints/epoch_N or step_N "
                       "folder, or 'auto' for the newest complete checkpoint in the work dir")
    start.add_argument("--resume", dest="resume_from", action="store_const", const="auto",
                       help="same as --resume-from auto")
    start.add_argument("--load-from", metavar="CKPT", help="start a new run (epoch 0) from these weights only: "
                       "a checkpoint or Hugging Face folder, a .safetensors file or a Hub id")
    parser.add_argument("--no-validate", action="store_true", help="skip evaluation during training (not advised)")
    return parser.parse_intermixed_args(argv)  # overrides may follow the options


def resolve(args):
    """The recipe and work dir that this command line means."""
    overrides = list(args.overrides) + list(args.cfg_options)
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    if args.work_dir is not None:
        overrides.append(f"work_dir={args.work_dir}")
    recipe = load_recipe(args.recipe, overrides)
    if recipe.work_dir is None:
        recipe.work_dir = str(Path("work_dirs") / Path(args.recipe).stem)
    return recipe


@cli_entry
def cli(argv=None):
    args = parse_args(argv)
    recipe = resolve(args)
    from hfcls.engine import train  # heavy imports after the recipe is known to be valid
    from hfcls.signals import TrainingInterrupted

    try:
        train(recipe, recipe.work_dir, resume_from=args.resume_from, validate=not args.no_validate,
              load_from=args.load_from)
    except TrainingInterrupted as stopped:
        if os.environ.get("RANK", "0") == "0":  # once, not once per process
            print(stopped, file=sys.stderr)
        sys.exit(128 + stopped.signum)  # the shell's convention for "ended by this signal"


if __name__ == "__main__":
    cli()
