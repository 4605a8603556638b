"""Metric results for people: a text table and a confusion-matrix picture."""

from __future__ import annotations

from pathlib import Path

from hfcls.extras import pyplot
from hfcls.files import replacing

MAX_PRINTED_CLASSES = 30  # a larger confusion matrix goes to --out / --show-dir only


def format_table(metrics: dict, class_names: list) -> str:
    """Scalar metrics as name | value rows; per-class lists (average=none) as one row per class."""
    scalars = [[name, _number(value)] for name, value in metrics.items() if not isinstance(value, list)]
    classwise = {
        name: value for name, value in metrics.items() if name != "confusion_matrix" and isinstance(value, list)
    }
    parts = []
    if scalars:
        parts.append(_table(["metric", "value"], scalars))
    if classwise:
        rows = [[name] + [_number(values[i]) for values in classwise.values()] for i, name in enumerate(class_names)]
        parts.append(_table(["class", *classwise], rows))
    matrix = metrics.get("confusion_matrix")
    if matrix is not None and len(matrix) <= MAX_PRINTED_CLASSES:
        rows = [[f"{name} (true)"] + [str(count) for count in row] for name, row in zip(class_names, matrix)]
        parts.append(_table(["confusion matrix", *map(str, class_names)], rows))
    return "\n\n".join(parts)


def _number(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _table(header: list, rows: list) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def fmt(cells):
        return (
            "| "
            + " | ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
            + " |"
        )

    return "\n".join([line, fmt(header), line, *map(fmt, rows), line])


def plot_confusion_matrix(matrix: list, class_names: list, path) -> Path:
    """Save the matrix as a picture with class names on both axes and counts in the cells."""
    import numpy as np

    plt = pyplot("the confusion matrix picture")

    counts = np.asarray(matrix)
    n = len(class_names)
    size = max(4.0, 0.5 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted class", ylabel="true class", title="confusion matrix")
    ax.set_xticklabels(class_names, rotation=45, ha="right")
    ax.set_yticklabels(class_names)
    if n <= MAX_PRINTED_CLASSES:
        middle = counts.max() / 2
        for (i, j), count in np.ndenumerate(counts):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > middle else "black")
    fig.tight_layout()
    path = Path(path)
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return path
