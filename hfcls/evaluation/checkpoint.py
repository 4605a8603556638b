"""Test a model on a recipe's split: `evaluate_checkpoint(EvalRequest)`, the work behind `hfcls-eval`.

Every process predicts its share; predictions are gathered with
`gather_for_metrics`, so every sample counts once, and the main process
computes the metrics and writes the results. The metrics on features (knn, retrieval) take the
training split as the gallery and the evaluated split as the queries: both predicted once, then
each process searches its slice of the gallery (hfcls.predict.neighbors).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from hfcls.artifacts.loading import load_predictor
from hfcls.data.build import align_labels, build_eval_loader, build_split, check_labelled, class_names, for_problem
from hfcls.data.images import dataset_files
from hfcls.engine.setup import accelerator_session
from hfcls.engine.threads import choose_threads
from hfcls.errors import HfclsError
from hfcls.evaluation.report import plot_confusion_matrix
from hfcls.evaluation.request import CONFUSION_PNG, EvalRequest, EvalResult
from hfcls.evaluation.results import prediction_records, write_results
from hfcls.files import storage_errors
from hfcls.labels import MULTI_LABEL, class_names_of, problem_type_of_model
from hfcls.metrics import DEFAULT_OPTIONS, NEIGHBOUR_METRICS, check_metric_kind, evaluate_metrics
from hfcls.metrics.retrieval import retrieval_metrics
from hfcls.predict.forward import Predictions, predict
from hfcls.predict.inputs import recipe_inputs
from hfcls.predict.neighbors import knn_scores, nearest, normalized

logger = logging.getLogger(__name__)


def evaluate_checkpoint(request: EvalRequest) -> EvalResult | None:
    """The metrics and files `request` asks for, on the main process; None on the others."""
    recipe, split = request.recipe, request.split
    with accelerator_session(recipe) as accelerator:
        choose_threads()
        with accelerator.main_process_first():  # the main process fills the datasets cache
            model = load_predictor(request.checkpoint, use_ema=request.use_ema, recipe=recipe)
            names, problem_type = class_names_of(model), problem_type_of_model(model)
            dataset = eval_split(recipe, split, names, request.checkpoint, problem_type)
            options = metric_settings(request, problem_type)
        if request.metrics or request.show_dir is not None:
            check_labelled(
                dataset, f"data.{split}", "metrics need labels; for predictions alone pass --out without --metrics"
            )
        logger.info(
            "evaluating %s on %d %s images (%d classes) with %d process(es)",
            request.checkpoint,
            len(dataset),
            split,
            len(names),
            accelerator.num_processes,
        )
        inputs = recipe_inputs(recipe, accelerator.device)
        model = accelerator.prepare_model(inputs.place(model), evaluation_mode=True)  # no DDP: nothing to synchronise
        predictions = predict_split(request, accelerator, model, inputs, dataset, wants_features(request), "eval")
        neighbours = None
        if set(request.metrics) & set(NEIGHBOUR_METRICS):
            with accelerator.main_process_first():
                gallery = gallery_split(recipe, names, request.checkpoint, problem_type)
            gallery = predict_split(request, accelerator, model, inputs, gallery, True, "gallery (train)")
            neighbours = search_neighbours(predictions, gallery, neighbour_count(request, options), accelerator)
        if not accelerator.is_main_process:
            return None
        files = dataset_files(dataset) if request.out is not None else None
        return report(request, predictions, names, options, files, neighbours)


def metric_settings(request: EvalRequest, problem_type: str) -> dict:
    """The metric options for a model of `problem_type` (the request's, over its kind's defaults), after
    refusing what that kind has not: metrics of the other kind, a multi-label confusion matrix."""
    multi_label = problem_type == MULTI_LABEL
    check_metric_kind(request.metrics, multi_label, f"data.{request.split}")
    if multi_label and request.show_dir is not None:
        raise HfclsError(
            "show_dir draws a confusion matrix, which a multi-label model has none of (an image may "
            "show several classes); leave it out",
            param="show_dir",
        )
    topk = None if multi_label else list(request.recipe.evaluation.topk)
    defaults = {key: value for key, value in DEFAULT_OPTIONS.items() if key in ("k", "temperature")}
    return {"topk": topk, "thrs": [None], "average": "macro", **defaults, **request.metric_options}


def eval_split(recipe, split: str, names: list, checkpoint, problem_type: str):
    """The split, its labels numbered as the model's classes and shaped for its problem type."""
    data = recipe.data
    if getattr(data, split) is None and not (split == "val" and data.train_val_split):
        raise HfclsError(
            f"split {split}: the recipe has no data.{split} source; set it or choose another split", param="split"
        )
    dataset = build_split(data, recipe.seed, split)
    unknown = sorted(set(class_names(dataset)) - set(names))
    if unknown:
        raise HfclsError(
            f"checkpoint {checkpoint} has {len(names)} classes; data.{split} has "
            f"{len(class_names(dataset))}, and these are not among the checkpoint's: "
            f"{', '.join(unknown[:10])}; evaluate with the data the model was trained on"
        )
    return align_labels(for_problem(dataset, problem_type, f"data.{split}"), names, where=f"data.{split}")


def predict_split(request: EvalRequest, accelerator, model, inputs, dataset, features: bool, desc: str) -> Predictions:
    """The split's class scores (and its features when asked), labels and valid mask, in dataset order,
    on every process: one pass."""
    recipe = request.recipe
    loader = build_eval_loader(recipe.data, dataset, accelerator, recipe.seed, request.batch_size)
    return predict(
        model,
        loader,
        inputs,
        accelerator=accelerator,
        tta=request.tta,
        features=features,
        skip_bad_images=recipe.data.skip_bad_images,
        desc=desc,
    )


def wants_features(request: EvalRequest) -> bool:
    """Whether the evaluated split's features are needed: in the results file, or to search neighbours."""
    wanted = request.out is not None and "features" in request.out_items
    return wanted or bool(set(request.metrics) & set(NEIGHBOUR_METRICS))


def gallery_split(recipe, names: list, checkpoint, problem_type: str):
    """The training split, the gallery of knn and retrieval: every image labelled."""
    gallery = eval_split(recipe, "train", names, checkpoint, problem_type)
    check_labelled(gallery, "data.train", "knn and retrieval take the labels of the gallery's images from it")
    return gallery


def neighbour_count(request: EvalRequest, options: dict) -> int:
    """How many neighbours the search keeps: knn's k, and the largest k of retrieval's recall@k and mAP@k."""
    counts = [options["k"]] if "knn" in request.metrics else []
    return max(counts + (list(options["topk"]) if "retrieval" in request.metrics else []))


def search_neighbours(predictions: Predictions, gallery: Predictions, k: int, accelerator) -> dict:
    """The k nearest gallery images of each (decodable) query: similarities and labels, best first, and how
    many gallery images share each query's label. On every process: each searches its slice of the gallery."""
    queries = normalized(predictions.features[predictions.valid])
    images, labels = normalized(gallery.features[gallery.valid]), gallery.labels[gallery.valid]
    sims, indices = nearest(queries, images, k, accelerator=accelerator)
    per_class = torch.bincount(labels, minlength=predictions.scores.shape[1])
    return {"sims": sims, "labels": labels[indices], "relevant": per_class[predictions.labels[predictions.valid]]}


def neighbour_metrics(request: EvalRequest, neighbours: dict, query_labels, num_classes: int, options: dict) -> dict:
    """knn's top-k accuracy (knn_topK) and retrieval's recall@k and mAP@k, from the neighbours found."""
    values = {}
    if "knn" in request.metrics:
        k = options["k"]
        scores = knn_scores(neighbours["sims"][:, :k], neighbours["labels"][:, :k], num_classes, options["temperature"])
        accuracy = evaluate_metrics(["accuracy"], scores, query_labels, topk=options["topk"])
        values.update({key.replace("accuracy_top", "knn_top"): value for key, value in accuracy.items()})
    if "retrieval" in request.metrics:
        values.update(
            retrieval_metrics(
                neighbours["labels"].numpy(), query_labels.numpy(), neighbours["relevant"].numpy(), options["topk"]
            )
        )
    return values


def report(
    request: EvalRequest, predictions: Predictions, names: list, options: dict, files, neighbours: dict | None = None
) -> EvalResult:
    """The metrics, and the files `out` and `show_dir` asked for."""
    scores, labels, valid = predictions.scores, predictions.labels, predictions.valid
    computed = {key: value for key, value in options.items() if key in ("topk", "thrs", "average")}
    values = evaluate_metrics(request.metrics, scores[valid], labels[valid], **computed) if request.metrics else {}
    if neighbours is not None:
        values.update(neighbour_metrics(request, neighbours, labels[valid], len(names), options))
    written = []
    if request.show_dir is not None:
        written.append(draw_confusion_matrix(values, scores[valid], labels[valid], names, request.show_dir))
    if request.out is not None:
        write_results(request.out, results_content(request, predictions, values, names, options, files))
        written.append(Path(request.out))
    return EvalResult(values, names, len(labels), written)


def draw_confusion_matrix(values: dict, scores, labels, names: list, show_dir) -> Path:
    """confusion_matrix.png in `show_dir`: the matrix the metrics hold, or one counted for the picture."""
    matrix = values.get("confusion_matrix")
    if matrix is None:
        matrix = evaluate_metrics(["confusion_matrix"], scores, labels)["confusion_matrix"]
    picture = Path(show_dir) / CONFUSION_PNG
    with storage_errors(f"confusion matrix {picture}", show_dir, "free some space and run again"):
        return plot_confusion_matrix(matrix, names, picture)


def results_content(
    request: EvalRequest, predictions: Predictions, values: dict, names: list, options: dict, files
) -> dict:
    """What the results file holds: the metrics and/or one record per sample, as out_items asks."""
    items = set(request.out_items)
    results = {"metrics": values} if "metrics" in items and values else {}
    if items & {"pred", "class_scores", "features"}:
        results["class_names"] = list(names)
        threshold = options["thrs"][0] if options["thrs"][0] is not None else 0.5
        results["predictions"] = prediction_records(
            predictions.scores,
            predictions.labels,
            predictions.valid,
            names,
            items,
            threshold,
            predictions.features,
            files,
        )
    return results
