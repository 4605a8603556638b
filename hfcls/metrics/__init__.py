"""Classification metrics, computed by the `evaluate` modules shipped in this folder.

Each metric has one implementation, in its module file (accuracy/, single_label/,
confusion_matrix/, multi_label/). They are loaded by local path, so nothing is fetched from
the Hub, and kept in memory, so processes computing at once share no cache
files. Inputs are the per-sample class scores and true labels of the whole
split, already gathered with `accelerator.gather_for_metrics`: softmax scores
and class ids (N,) for single-label data, sigmoid scores and multi-hot labels
(N, C) for multi-label data. Each metric serves one of the two kinds.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import yaml

from hfcls.errors import HfclsError, did_you_mean

# metric name -> the module that computes it
METRICS = {
    "accuracy": "accuracy",
    "precision": "single_label",
    "recall": "single_label",
    "f1_score": "single_label",
    "support": "single_label",
    "confusion_matrix": "confusion_matrix",
    "mAP": "multi_label",
    "CP": "multi_label",
    "CR": "multi_label",
    "CF1": "multi_label",
    "OP": "multi_label",
    "OR": "multi_label",
    "OF1": "multi_label",
}
# Single-label metrics on the features' nearest neighbours among the training images (the gallery):
# hfcls.evaluation searches them (hfcls.predict.neighbors), retrieval's numbers are metrics/retrieval.py's.
NEIGHBOUR_METRICS = ["knn", "retrieval"]
METRIC_NAMES = [*METRICS, *NEIGHBOUR_METRICS]
MULTI_LABEL_METRICS = [name for name, module in METRICS.items() if module == "multi_label"]
SINGLE_LABEL_METRICS = [name for name in METRIC_NAMES if name not in MULTI_LABEL_METRICS]
AVERAGES = ("macro", "micro", "none")
# k and temperature: the neighbours that vote in knn, and the temperature of their votes (none: one vote each).
DEFAULT_OPTIONS = {"topk": [1, 5], "thrs": None, "average": "macro", "k": 20, "temperature": 0.07}
SCALAR_OPTIONS = ("average", "k", "temperature")


def check_metric_names(names) -> list:
    names = list(names or [])
    for name in names:
        if name not in METRIC_NAMES:
            raise HfclsError(
                f"unknown metric {name!r}{did_you_mean(name, METRIC_NAMES)}; known metrics: {', '.join(METRIC_NAMES)}"
            )
    return list(dict.fromkeys(names))


def metric_option(pair: str) -> tuple:
    """'topk=1,5', 'average=none', 'thrs=0.5' or 'k=20' as MMClassification writes them -> (key, value), topk and
    thrs as lists; hfcls-eval's --metric-options type. The values are checked by `given_metric_options`."""
    key, sep, text = pair.partition("=")
    if not sep or key not in DEFAULT_OPTIONS:
        raise HfclsError(f"metric option {pair!r}: expected one of {', '.join(f'{k}=...' for k in DEFAULT_OPTIONS)}")
    value = _yaml_value(text) if "," not in text else [_yaml_value(part) for part in text.split(",")]
    return key, value if key in SCALAR_OPTIONS or isinstance(value, list) else [value]


def given_metric_options(options: dict) -> dict:
    """The options given, checked (see check_metric_options); the defaults, which depend on the model, left out."""
    checked = check_metric_options(**options)
    return {key: checked[key] for key in options}


def _yaml_value(text: str):
    text = text.strip(" ()[]")
    if text == "None":  # as MMClassification's Python-style options write it
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise HfclsError(f"metric option value {text!r} is not a number or word") from None


def check_metric_kind(names, multi_label: bool, where: str = "the data") -> None:
    """Refuse metrics of the other kind: single-label metrics on multi-hot labels, and the reverse."""
    wrong = [name for name in names if (name in MULTI_LABEL_METRICS) != multi_label]
    if not wrong:
        return
    if multi_label:
        raise HfclsError(
            f"metric {wrong[0]} counts one class per image, but {where} is multi-label (lists of "
            f"classes); use {', '.join(MULTI_LABEL_METRICS)}"
        )
    raise HfclsError(
        f"metric {wrong[0]} is for multi-label data (lists of classes), but {where} has one class "
        f"per image; use {', '.join(SINGLE_LABEL_METRICS)}"
    )


def best_metric_key(save_best: str, metrics: dict) -> str:
    """evaluation.save_best as a key of `metrics`: auto is mAP for a multi-label model, else accuracy_top1."""
    if save_best != "auto":
        return save_best
    return "mAP" if "mAP" in metrics else "accuracy_top1"


def check_metric_options(topk=(1, 5), thrs=None, average="macro", **neighbours) -> dict:
    """The options, checked; topk=None (multi-label metrics: the threshold rule alone) stays None. `neighbours`:
    knn's k and temperature, when given (check_neighbour_options)."""
    if topk is None:
        return {**check_metric_options(thrs=thrs, average=average, **neighbours), "topk": None}
    topk = list(topk) if isinstance(topk, (list, tuple)) else [topk]
    if not topk or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in topk):
        raise HfclsError(f"metric option topk must be whole numbers of 1 or more, e.g. topk=1,5; got {topk}")
    thrs = list(thrs) if isinstance(thrs, (list, tuple)) else [thrs]
    if not all(t is None or (isinstance(t, (int, float)) and not isinstance(t, bool) and 0 <= t <= 1) for t in thrs):
        raise HfclsError(f"metric option thrs must be score thresholds from 0 to 1, e.g. thrs=0.5; got {thrs}")
    average = "none" if average is None else str(average)
    if average not in AVERAGES:
        raise HfclsError(f"metric option average must be one of {', '.join(AVERAGES)}, got {average!r}")
    thrs = [None if t is None else float(t) for t in thrs]
    return {"topk": topk, "thrs": thrs, "average": average, **check_neighbour_options(**neighbours)}


def check_neighbour_options(**given) -> dict:
    """knn's k (a whole number >= 1) and temperature (> 0; none: one vote each), those given."""
    unknown = set(given) - {"k", "temperature"}
    if unknown:
        raise TypeError(f"unknown metric options {sorted(unknown)}")
    k = given.get("k", 1)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise HfclsError(
            f"metric option k (the neighbours that vote in knn) must be a whole number of 1 or more, got {k}"
        )
    if given.get("temperature") in ("none", "None"):
        given["temperature"] = None
    temperature = given.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or temperature <= 0
    ):
        raise HfclsError(
            "metric option temperature (of the knn votes) must be a number above 0, or none for one vote each; "
            f"got {temperature}"
        )
    return given


@functools.cache
def load_metric(module: str):
    """The shipped `evaluate` module by local path (offline, in memory)."""
    import evaluate

    return evaluate.load(str(Path(__file__).parent / module), keep_in_memory=True)


def evaluate_metrics(names, scores, labels, *, topk=None, thrs=(None,), average="macro") -> dict:
    """{metric: value} for the named metrics on (N, C) scores and (N,) class ids or (N, C) multi-hot labels.

    Names and options come checked (check_metric_names, check_metric_kind, check_metric_options).
    topk: accuracy's k (default 1 and 5); for multi-label metrics the top-k rule, which replaces the
    threshold rule unless thrs are given (default: the 0.5 threshold alone).
    """
    scores, labels = np.asarray(scores, dtype=np.float32), np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        raise HfclsError("no valid samples to compute metrics on")
    if labels.ndim == 1 and (labels < 0).any():  # -1 would index the last class (multi-label: -1 is ignored)
        raise HfclsError(
            f"{int((labels < 0).sum())} of the {len(labels)} samples have no label (-1); metrics need a labelled split"
        )
    if labels.ndim == 2:
        return _compute("multi_label", scores, labels, items=list(names), thrs=thrs, topk=topk)
    results = {}
    if "accuracy" in names:
        results.update(_compute("accuracy", scores, labels, topk=topk or DEFAULT_OPTIONS["topk"], thrs=thrs))
    items = [name for name in names if METRICS.get(name) == "single_label"]
    if items:
        results.update(_compute("single_label", scores, labels, items=items, average=average, thrs=thrs))
    if "confusion_matrix" in names:
        results.update(_compute("confusion_matrix", scores, labels))
    return results


def _compute(module, scores, labels, **kwargs) -> dict:
    # The module's own computation, on the arrays in hand: Metric.compute() would first
    # copy every score through an Arrow table (for evaluate's multi-process mode; hfcls
    # gathers with Accelerate instead), 17 of its 20 s on 50,000 x 1,000 scores.
    return load_metric(module)._compute(predictions=scores, references=labels, **kwargs)
