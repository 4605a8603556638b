"""Failure analysis of an evaluation (the library side of hfcls-analyze, as MMClassification's
analyze_results.py): from `hfcls-eval --out RESULTS --out-items pred`, the most confident
mistakes and successes as image grids, the accuracy of each class and the classes confused
with each other.

    DIR/failures.png             the N most confident mistakes, titled true -> predicted (score)
    DIR/successes.png            the N most confident right answers
    DIR/per_class_accuracy.png   one bar per class
    DIR/confusion_pairs.csv      true, predicted, count: every pair of classes confused, most often first
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from hfcls.analysis.figures import pyplot, save_figure
from hfcls.errors import HfclsError
from hfcls.evaluation.results import read_results
from hfcls.files import replacing

OUT_ITEMS_HINT = "write it with hfcls-eval RECIPE CHECKPOINT --out FILE --out-items metrics pred"


def scored_records(path) -> tuple[list, list]:
    """(class names, the records that have a prediction and a score) of a results file."""
    path = Path(path)
    if not path.is_file():
        raise HfclsError(f"results file {path} does not exist; {OUT_ITEMS_HINT}")
    results = read_results(path)
    records = results.get("predictions") if isinstance(results, dict) else None
    if not records or "pred_score" not in records[0]:
        raise HfclsError(f"{path} holds no per-image predictions and scores; {OUT_ITEMS_HINT}")
    names = results.get("class_names")
    if names is None:
        raise HfclsError(f"{path} holds no class names (written by an older hfcls); {OUT_ITEMS_HINT}")
    return names, [r for r in records if r.get("pred_score") is not None and r["gt_label"] >= 0]


def analyze(results_path, out_dir, n: int = 16) -> dict:
    """Write the grids, the chart and the pairs into `out_dir`; return {name: path} and the counts."""
    if n < 1:
        raise HfclsError("n must be at least 1", param="n")
    names, records = scored_records(results_path)
    wrong = sorted((r for r in records if r["pred_label"] != r["gt_label"]), key=lambda r: -r["pred_score"])
    right = sorted((r for r in records if r["pred_label"] == r["gt_label"]), key=lambda r: -r["pred_score"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {
        "failures": image_grid(wrong[:n], names, out_dir / "failures.png", "most confident mistakes"),
        "successes": image_grid(right[:n], names, out_dir / "successes.png", "most confident successes"),
        "per_class_accuracy": plot_class_accuracy(
            class_accuracy(records, len(names)), names, out_dir / "per_class_accuracy.png"
        ),
        "confusion_pairs": write_pairs(confusion_pairs(records), names, out_dir / "confusion_pairs.csv"),
    }
    return {
        "written": written,
        "images": len(records),
        "mistakes": len(wrong),
        "pairs": confusion_pairs(records)[:5],
        "class_names": names,
    }


def class_accuracy(records: list, num_classes: int) -> list:
    """Top-1 accuracy (%) of each class; None for a class without images."""
    totals, hits = (
        Counter(r["gt_label"] for r in records),
        Counter(r["gt_label"] for r in records if r["pred_label"] == r["gt_label"]),
    )
    return [100 * hits[c] / totals[c] if totals[c] else None for c in range(num_classes)]


def confusion_pairs(records: list) -> list:
    """[(true, predicted, count)] of every mistake, most frequent first."""
    pairs = Counter((r["gt_label"], r["pred_label"]) for r in records if r["pred_label"] != r["gt_label"])
    return sorted(((t, p, c) for (t, p), c in pairs.items()), key=lambda item: (-item[2], item[0], item[1]))


def write_pairs(pairs: list, names: list, path: Path) -> Path:
    with replacing(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true", "predicted", "count"])
        writer.writerows([names[t], names[p], c] for t, p, c in pairs)
    return path


def image_grid(records: list, names: list, path: Path, title: str) -> Path:
    """The records' images in a square grid, each titled true/predicted label and score."""
    missing = [r for r in records if not r.get("image") or not Path(r["image"]).is_file()]
    if missing:
        raise HfclsError(
            f"image {missing[0].get('image') or '(none recorded)'} of the results cannot be opened: "
            "the results name each image's file only for data read from files; run hfcls-analyze "
            "where those paths resolve"
        )
    columns = max(1, math.ceil(math.sqrt(len(records))))
    rows = max(1, math.ceil(len(records) / columns))
    fig, axes = pyplot().subplots(rows, columns, figsize=(2 * columns, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, record in zip(axes.flat, records):
        with Image.open(record["image"]) as pil:
            ax.imshow(np.asarray(pil.convert("RGB")), interpolation="nearest")
        ax.set_title(
            f"true {names[record['gt_label']]}\npred {names[record['pred_label']]} ({record['pred_score']:.2f})",
            fontsize=8,
        )
    fig.suptitle(f"{title} ({len(records)})" if records else f"{title}: none", fontsize=10)
    return save_figure(fig, path)


def plot_class_accuracy(accuracy: list, names: list, path: Path) -> Path:
    fig, ax = pyplot().subplots(figsize=(max(4.0, 0.4 * len(names) + 2), 3.5))
    ax.bar(range(len(names)), [a or 0 for a in accuracy], color="tab:blue")
    ax.set(xticks=range(len(names)), ylim=(0, 100), ylabel="top-1 accuracy (%)", title="accuracy per class")
    ax.set_xticklabels(names, rotation=45 if len(names) > 10 else 0, ha="right" if len(names) > 10 else "center")
    return save_figure(fig, path)
