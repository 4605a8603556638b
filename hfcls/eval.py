"""Evaluate a checkpoint on a recipe's val or test split: `hfcls-eval RECIPE CHECKPOINT [options]`.

Also `accelerate launch -m hfcls.eval RECIPE CHECKPOINT ...` on many processes:
predictions are gathered with `gather_for_metrics`, so every sample counts once,
and the main process computes the metrics and writes the results.
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

import yaml

from hfcls.errors import HfclsError, cli_entry
from hfcls.metrics import METRICS, check_metric_names, parse_metric_options
from hfcls.recipe import load_recipe

OUT_FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".pkl": "pickle", ".pickle": "pickle"}
OUT_ITEMS = ("metrics", "pred", "class_scores")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="hfcls-eval", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="recipe YAML file (data, eval transforms, architecture)")
    parser.add_argument("checkpoint", help="a best/ or latest/ folder, a checkpoints/epoch_N folder, "
                        "or a published .safetensors file")
    parser.add_argument("--metrics", nargs="+", metavar="NAME", help=f"any of: {', '.join(METRICS)}")
    parser.add_argument("--metric-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="topk=1,5 (default: the recipe's evaluation.topk)  average=macro|micro|none  thrs=0.5[,0.7]")
    parser.add_argument("--out", help="results file: .json, .yaml/.yml or .pkl/.pickle")
    parser.add_argument("--out-items", nargs="+", default=["metrics", "pred"], choices=OUT_ITEMS,
                        help="what --out holds: metrics, pred (per-sample label, class, score), "
                        "class_scores (per-sample scores of every class)")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--batch-size", type=int, help="per process (default: data.eval_batch_size or batch_size)")
    parser.add_argument("--show-dir", help="write confusion_matrix.png here")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="key.sub=value", help="recipe overrides")
    return parser.parse_args(argv)


def check_request(args) -> None:
    """Refuse a bad command line before any work is done."""
    if not args.metrics and not args.out:
        raise HfclsError("nothing to report: pass --metrics (e.g. --metrics accuracy f1_score) and/or --out FILE")
    if args.metrics:
        args.metrics = check_metric_names(args.metrics)
    args.topk_given = any(option.startswith("topk=") for option in args.metric_options)
    args.metric_options = parse_metric_options(args.metric_options)
    if args.out and Path(args.out).suffix.lower() not in OUT_FORMATS:
        raise HfclsError(f"--out {args.out}: unknown extension; use one of {', '.join(OUT_FORMATS)}")
    if args.batch_size is not None and args.batch_size < 1:
        raise HfclsError("--batch-size must be at least 1")


@cli_entry
def cli(argv=None):
    args = parse_args(argv)
    check_request(args)
    recipe = load_recipe(args.recipe, args.cfg_options)
    if not args.topk_given:  # as training reported it
        args.metric_options["topk"] = list(recipe.evaluation.topk)
    from hfcls.evaluation import evaluate_checkpoint  # heavy imports once the command line is known good

    evaluate_checkpoint(recipe, args)


# ----------------------------------------------------------------------------- results files


def write_results(path, results: dict) -> None:
    """Write `results` in the format the extension names, creating the folder."""
    path = Path(path)
    kind = OUT_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise HfclsError(f"{path}: unknown extension; use one of {', '.join(OUT_FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "json":
        content = json.dumps(results, indent=1).encode()
    elif kind == "yaml":
        content = yaml.safe_dump(results, sort_keys=False).encode()
    else:
        content = pickle.dumps(results)
    # Written aside and renamed: an earlier results file survives a failed write whole.
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(content)
    tmp.replace(path)


def read_results(path) -> dict:
    path = Path(path)
    kind = OUT_FORMATS.get(path.suffix.lower())
    if kind == "json":
        return json.loads(path.read_text())
    if kind == "yaml":
        return yaml.safe_load(path.read_text())
    if kind == "pickle":
        return pickle.loads(path.read_bytes())
    raise HfclsError(f"{path}: unknown extension; use one of {', '.join(OUT_FORMATS)}")


if __name__ == "__main__":
    cli()
