"""The report of an evaluation: a Markdown table with one row per class for average=none."""

import numpy as np

from hfcls.evaluation.report import format_table
from hfcls.metrics import evaluate_metrics

NUM_CLASSES = 7


def test_table_has_one_row_per_class_for_average_none():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(301, NUM_CLASSES)) * 2
    scores = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES - 1, size=301)  # class 6 never occurs as a label
    metrics = evaluate_metrics(["accuracy", "recall", "confusion_matrix"], scores, labels, average="none")
    names = [f"class{i}" for i in range(NUM_CLASSES)]
    table = format_table(metrics, names)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| class")}
    assert f"{metrics['recall_classwise'][2]:.2f}" in rows["class2"]
    assert f"| accuracy_top1 | {metrics['accuracy_top1']:.2f} |" in table
    assert "| class6 (true)" in table  # the confusion matrix rows
