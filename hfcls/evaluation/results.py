"""Results files of an evaluation (`--out`): metrics and per-sample predictions, as .json, .yaml or .pkl."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import yaml

from hfcls.errors import HfclsError
from hfcls.files import check_output, storage_errors, write_atomic
from hfcls.predict.scores import classes_above
from hfcls.unpickle import load_plain

OUT_FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".pkl": "pickle", ".pickle": "pickle"}
OUT_ITEMS = ("metrics", "pred", "class_scores", "features")


def results_format(path) -> str:
    kind = OUT_FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise HfclsError(f"{path}: unknown extension; use one of {', '.join(OUT_FORMATS)}")
    return kind


def check_results_path(path, overwrite: bool = False) -> None:
    """Refuse, before any work, a results file that could not be written or would replace one."""
    results_format(path)
    check_output(path, overwrite, kind="file", what="out", param="out")


def write_results(path, results: dict) -> None:
    """Write `results` in the format the extension names, creating the folder."""
    path = Path(path)
    kind = results_format(path)
    if kind == "json":
        content = json.dumps(results, indent=1).encode()
    elif kind == "yaml":
        content = yaml.safe_dump(results, sort_keys=False).encode()
    else:
        content = pickle.dumps(results)
    # Written aside and renamed: an earlier results file survives a failed write whole.
    with storage_errors(
        f"results file {path}", path.parent, "an earlier file there is intact; free some space and run again"
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, content)


def read_results(path) -> dict:
    path = Path(path)
    kind = results_format(path)
    if kind == "json":
        return json.loads(path.read_text())
    if kind == "yaml":
        return yaml.safe_load(path.read_text())
    return load_plain(path.read_bytes())  # a results file holds plain data only: nothing in it may run


def prediction_records(scores, labels, valid, names, items, threshold: float = 0.5, features=None, files=None) -> list:
    """One record per sample, in dataset order; an undecodable (skipped) image has no prediction.
    `files`: each sample's image file (None where it has none), recorded as `image`.

    Multi-hot labels (a multi-label model): gt_label lists the classes shown, and the prediction
    every class scoring >= `threshold`, best first (pred_label, pred_class, pred_score as lists).
    """
    if labels.ndim == 2:
        return [
            _multi_label_record(
                scores[i],
                labels[i],
                bool(valid[i]),
                names,
                items,
                threshold,
                features[i] if features is not None else None,
                files[i] if files is not None and i < len(files) else None,
            )
            for i in range(len(labels))
        ]
    best_scores, best_labels = scores.max(dim=1)
    records = []
    for i in range(len(labels)):
        record = {"gt_label": int(labels[i])}
        ok = bool(valid[i])
        if "pred" in items:
            label = int(best_labels[i])
            record.update(
                pred_label=label if ok else None,
                pred_class=names[label] if ok else None,
                pred_score=float(best_scores[i]) if ok else None,
            )
        if "class_scores" in items:
            record["class_scores"] = scores[i].tolist() if ok else None
        if "features" in items and features is not None:
            record["features"] = features[i].tolist() if ok else None
        if files is not None and i < len(files) and files[i] is not None:
            record["image"] = files[i]
        records.append(record)
    return records


def _multi_label_record(scores, labels, ok: bool, names, items, threshold: float, features=None, file=None) -> dict:
    record = {"gt_label": [int(c) for c in (labels == 1).nonzero().flatten()]}
    if "pred" in items:
        above = classes_above(scores, threshold) if ok else None
        record.update(
            pred_label=[c for c, _ in above] if ok else None,
            pred_class=[names[c] for c, _ in above] if ok else None,
            pred_score=[s for _, s in above] if ok else None,
        )
    if "class_scores" in items:
        record["class_scores"] = scores.tolist() if ok else None
    if "features" in items and features is not None:
        record["features"] = features.tolist() if ok else None
    if file is not None:
        record["image"] = file
    return record
