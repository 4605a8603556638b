"""The work behind `hfcls-eval`: predict a split on every process, report on the main one."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from accelerate import Accelerator

from hfcls.loading import class_names_of, load_classifier
from hfcls.data.loaders import align_labels, attach_transforms, build_datasets, build_loader, class_names, pin_memory
from hfcls.data.transforms import Normalize
from hfcls.dist import cpu_only_processes
from hfcls.engine import predict
from hfcls.errors import HfclsError
from hfcls.eval import write_results
from hfcls.logs import setup_logging
from hfcls.metrics import evaluate_metrics
from hfcls.metrics.report import format_table, plot_confusion_matrix
from hfcls.precision import check_mixed_precision, default_device_type

logger = logging.getLogger(__name__)


def evaluate_checkpoint(recipe, args) -> dict | None:
    """Run the evaluation `args` (hfcls-eval's parsed, checked command line) asks for;
    return the results on the main process, None on the others."""
    check_mixed_precision(recipe.train.mixed_precision, default_device_type())
    accelerator = Accelerator(mixed_precision=recipe.train.mixed_precision, cpu=cpu_only_processes())
    setup_logging(None, accelerator.is_main_process)
    with accelerator.main_process_first():  # the main process fills the datasets cache
        model = load_classifier(args.checkpoint, recipe)
        names = class_names_of(model)
        dataset = eval_split(recipe, args.split, names, args.checkpoint)
    logger.info("evaluating %s on %d %s images (%d classes) with %d process(es)", args.checkpoint, len(dataset),
                args.split, len(names), accelerator.num_processes)
    scores, labels, valid = predict_split(recipe, accelerator, model, dataset, args.batch_size)
    results = None
    if accelerator.is_main_process:
        results = report(args, scores, labels, valid, names)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return results


def eval_split(recipe, split: str, names: list, checkpoint):
    """The split with the eval transforms, its labels numbered as the model's classes."""
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
    dataset = align_labels(dataset, names, where=f"data.{split}")
    return attach_transforms({split: dataset}, data)[split]


def predict_split(recipe, accelerator, model, dataset, batch_size=None):
    """(scores, labels, valid) of the whole split in dataset order, on every process."""
    data, train = recipe.data, recipe.train
    batch_size = batch_size or data.eval_batch_size or data.batch_size
    loader = build_loader(dataset, data, batch_size, False, recipe.seed, pin_memory(data, accelerator.device))
    if train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model, loader = accelerator.prepare(model, loader)
    normalize = Normalize(data.mean, data.std).to(accelerator.device)
    logits, labels, valid = predict(model, loader, accelerator, normalize, train.channels_last, data.skip_bad_images)
    return logits.softmax(dim=1), labels, valid


def report(args, scores, labels, valid, names) -> dict:
    """Print the metrics table, write --out and --show-dir; the results as written."""
    results = {}
    metrics = {}
    if args.metrics:
        metrics = evaluate_metrics(args.metrics, scores[valid], labels[valid], **args.metric_options)
        print(format_table(metrics, names))
        results["metrics"] = metrics
    if args.show_dir:
        matrix = metrics.get("confusion_matrix") or evaluate_metrics(
            ["confusion_matrix"], scores[valid], labels[valid])["confusion_matrix"]
        path = plot_confusion_matrix(matrix, names, Path(args.show_dir) / "confusion_matrix.png")
        print(f"wrote {path}")
    if args.out:
        items = set(args.out_items)
        if "metrics" not in items:
            results.pop("metrics", None)
        if items & {"pred", "class_scores"}:
            results["predictions"] = prediction_records(scores, labels, valid, names, items)
        write_results(args.out, results)
        print(f"wrote {args.out}: {len(labels)} samples")
    return results


def prediction_records(scores, labels, valid, names, items) -> list:
    """One record per sample, in dataset order; an undecodable (skipped) image has no prediction."""
    best_scores, best_labels = scores.max(dim=1)
    records = []
    for i in range(len(labels)):
        record = {"gt_label": int(labels[i])}
        ok = bool(valid[i])
        if "pred" in items:
            label = int(best_labels[i])
            record.update(pred_label=label if ok else None, pred_class=names[label] if ok else None,
                          pred_score=float(best_scores[i]) if ok else None)
        if "class_scores" in items:
            record["class_scores"] = scores[i].tolist() if ok else None
        records.append(record)
    return records
