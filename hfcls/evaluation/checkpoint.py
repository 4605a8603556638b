"""Test a model on a recipe's split: `evaluate_checkpoint`, the work behind `hfcls-eval`.

Every process predicts its share; predictions are gathered with
`gather_for_metrics`, so every sample counts once, and the main process
computes the metrics and writes the results.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from hfcls.artifacts.loading import load_predictor
from hfcls.data.build import (align_labels, build_datasets, build_eval_loader, check_labelled, class_names,
                              for_problem)
from hfcls.data.images import dataset_files
from hfcls.data.transforms import Normalize
from hfcls.engine.features import PenultimateFeatures
from hfcls.engine.setup import accelerator_session
from hfcls.engine.steps import predict
from hfcls.engine.threads import choose_threads
from hfcls.engine.tta import parse_tta, with_tta
from hfcls.errors import HfclsError
from hfcls.files import check_new_output, check_writable, storage_errors
from hfcls.evaluation.report import plot_confusion_matrix
from hfcls.evaluation.results import OUT_ITEMS, check_results_path, prediction_records, write_results
from hfcls.metrics import check_metric_kind, check_metric_names, check_metric_options, evaluate_metrics
from hfcls.labels import MULTI_LABEL, class_names_of, problem_type_of_model
from hfcls.models import class_scores

logger = logging.getLogger(__name__)

CONFUSION_PNG = "confusion_matrix.png"


def evaluate_checkpoint(recipe, checkpoint, *, split: str = "val", metrics=(), metric_options: dict | None = None,
                        use_ema: bool | None = None, batch_size: int | None = None, out=None,
                        out_items=("metrics", "pred"), show_dir=None, tta=None, overwrite: bool = False) -> dict:
    """Evaluate any artifact the reader knows on the recipe's `split`.

    metrics: names from hfcls.metrics.METRICS, of the model's kind (single- or multi-label);
    metric_options: topk (single-label: default the recipe's evaluation.topk; multi-label:
    the top-k rule instead of the 0.5 threshold), thrs, average. out: a results file holding
    `out_items` (metrics, pred, class_scores, features: the pooled features the head reads; a
    multi-label prediction is every class at or above the first of thrs, else 0.5); show_dir:
    where confusion_matrix.png goes. Both are checked before the evaluation: writable, and new
    unless `overwrite`. tta: "flip", "crops" or "flip,crops" averages the class probabilities
    over those views (hfcls.engine.tta).
    Returns, on the main process, {"metrics", "class_names", "samples", "written"}
    (the files written); {} on the others.
    """
    metrics = check_metric_names(metrics)
    check_metric_options(**(metric_options or {}))
    if not metrics and out is None:
        raise HfclsError("nothing to report: pass --metrics (e.g. --metrics accuracy f1_score) and/or --out FILE")
    unknown = sorted(set(out_items) - set(OUT_ITEMS))
    if unknown:
        raise HfclsError(f"out_items: unknown {', '.join(unknown)}; choose from {', '.join(OUT_ITEMS)}")
    if out is not None:
        check_results_path(out, overwrite)
    if show_dir is not None:
        check_new_output(Path(show_dir) / CONFUSION_PNG, overwrite, "--show-dir")
        check_writable(show_dir, f"--show-dir {show_dir}")
    if batch_size is not None and batch_size < 1:
        raise HfclsError("--batch-size must be at least 1")
    tta = parse_tta(tta)
    with accelerator_session(recipe) as accelerator:
        choose_threads()
        with accelerator.main_process_first():  # the main process fills the datasets cache
            model = load_predictor(checkpoint, use_ema=use_ema, recipe=recipe)
            names, problem_type = class_names_of(model), problem_type_of_model(model)
            dataset = eval_split(recipe, split, names, checkpoint, problem_type)
            options = metric_settings(recipe, problem_type, metrics, metric_options, show_dir, f"data.{split}")
        if metrics or show_dir is not None:
            check_labelled(dataset, f"data.{split}", "metrics need labels; for predictions alone pass --out "
                           "without --metrics")
        logger.info("evaluating %s on %d %s images (%d classes) with %d process(es)", checkpoint, len(dataset),
                    split, len(names), accelerator.num_processes)
        scores, labels, valid = predict_split(recipe, accelerator, with_tta(model, tta), dataset, batch_size)
        features = (predict_logits(recipe, accelerator, PenultimateFeatures(model), dataset, batch_size)[0]
                    if out is not None and "features" in out_items else None)
        if not accelerator.is_main_process:
            return {}
        files = dataset_files(dataset) if out is not None else None
        return report(scores, labels, valid, names, metrics, options, out, out_items, show_dir, features, files)


def metric_settings(recipe, problem_type: str, metrics: list, metric_options: dict | None, show_dir,
                    where: str) -> dict:
    """The metric options for a model of `problem_type`, after refusing metrics of the other kind."""
    multi_label = problem_type == MULTI_LABEL
    check_metric_kind(metrics, multi_label, where)
    if multi_label and show_dir is not None:
        raise HfclsError("--show-dir draws a confusion matrix, which a multi-label model has none of (an image may "
                         "show several classes); leave --show-dir out")
    defaults = {"topk": None} if multi_label else {"topk": list(recipe.evaluation.topk)}
    return check_metric_options(**{**defaults, **(metric_options or {})})


def eval_split(recipe, split: str, names: list, checkpoint, problem_type: str):
    """The split, its labels numbered as the model's classes and shaped for its problem type."""
    data = recipe.data
    if getattr(data, split) is None and not (split == "val" and data.train_val_split):
        raise HfclsError(f"the recipe has no data.{split} source; set it or choose another --split")
    # A val split held out of train needs train loaded to be split off.
    splits = ("train", split) if split == "val" and data.train_val_split else (split,)
    dataset = build_datasets(data, recipe.seed, splits)[split]
    unknown = sorted(set(class_names(dataset)) - set(names))
    if unknown:
        raise HfclsError(f"checkpoint {checkpoint} has {len(names)} classes; data.{split} has "
                         f"{len(class_names(dataset))}, and these are not among the checkpoint's: "
                         f"{', '.join(unknown[:10])}; evaluate with the data the model was trained on")
    return align_labels(for_problem(dataset, problem_type, f"data.{split}"), names, where=f"data.{split}")


def predict_split(recipe, accelerator, model, dataset, batch_size=None):
    """(scores, labels, valid) of the whole split in dataset order, on every process."""
    logits, labels, valid = predict_logits(recipe, accelerator, model, dataset, batch_size)
    return class_scores(logits, problem_type_of_model(model)), labels, valid


def predict_logits(recipe, accelerator, model, dataset, batch_size=None):
    """(what the model's `logits` hold, labels, valid) of the whole split in dataset order."""
    data, train = recipe.data, recipe.train
    loader = build_eval_loader(data, dataset, accelerator, recipe.seed, batch_size)
    if train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model = accelerator.prepare_model(model, evaluation_mode=True)  # no DDP: nothing to synchronise
    normalize = Normalize(data.mean, data.std).to(accelerator.device)
    return predict(model, loader, accelerator, normalize, train.channels_last, data.skip_bad_images)


def report(scores, labels, valid, names, metrics, options, out, out_items, show_dir, features=None,
           files=None) -> dict:
    """The metrics, and the files `out` and `show_dir` asked for."""
    values = evaluate_metrics(metrics, scores[valid], labels[valid], **options) if metrics else {}
    written = []
    if show_dir is not None:
        matrix = values.get("confusion_matrix") or evaluate_metrics(
            ["confusion_matrix"], scores[valid], labels[valid])["confusion_matrix"]
        with storage_errors(f"--show-dir {show_dir}", show_dir, "free some space and run again"):
            written.append(plot_confusion_matrix(matrix, names, Path(show_dir) / CONFUSION_PNG))
    if out is not None:
        items = set(out_items)
        results = {"metrics": values} if "metrics" in items and values else {}
        if items & {"pred", "class_scores", "features"}:
            results["class_names"] = list(names)
            threshold = options["thrs"][0] if options["thrs"][0] is not None else 0.5
            results["predictions"] = prediction_records(scores, labels, valid, names, items, threshold, features,
                                                        files)
        write_results(out, results)
        written.append(Path(out))
    return {"metrics": values, "class_names": names, "samples": len(labels), "written": written}
