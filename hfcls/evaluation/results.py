"""Results files of an evaluation (`--out`): metrics and per-sample predictions, as .json, .yaml or .pkl."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import yaml

from hfcls.errors import HfclsError

OUT_FORMATS = {".json": "json", ".yaml": "yaml", ".yml": "yaml", ".pkl": "pickle", ".pickle": "pickle"}
OUT_ITEMS = ("metrics", "pred", "class_scores", "features")


def results_format(path) -> str:
    kind = OUT_FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise HfclsError(f"{path}: unknown extension; use one of {', '.join(OUT_FORMATS)}")
    return kind


def check_results_path(path) -> None:
    """Refuse, before any work, a results file that could not be written."""
    results_format(path)
    folder = Path(path).resolve().parent
    while not folder.exists():  # the nearest existing folder must let us create the rest
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise HfclsError(f"--out {path}: cannot write there ({folder} is not a writable folder); "
                         "choose another path")


def write_results(path, results: dict) -> None:
    """Write `results` in the format the extension names, creating the folder."""
    path = Path(path)
    kind = results_format(path)
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
    kind = results_format(path)
    if kind == "json":
        return json.loads(path.read_text())
    if kind == "yaml":
        return yaml.safe_load(path.read_text())
    return pickle.loads(path.read_bytes())


def prediction_records(scores, labels, valid, names, items, features=None, files=None) -> list:
    """One record per sample, in dataset order; an undecodable (skipped) image has no prediction.
    `files`: each sample's image file (None where it has none), recorded as `image`."""
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
        if "features" in items and features is not None:
            record["features"] = features[i].tolist() if ok else None
        if files is not None and i < len(files) and files[i] is not None:
            record["image"] = files[i]
        records.append(record)
    return records
