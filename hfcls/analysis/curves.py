"""A run's curves (hfcls-plot): loss, LR and validation accuracy per epoch, from its metrics.jsonl; the
epochs best/ and latest/ hold, marked from their own training records (not from the log, whose last
line a kill may have torn)."""

from __future__ import annotations

from pathlib import Path

from hfcls.artifacts.describe import training_record
from hfcls.artifacts.run_dir import EXPORTS, METRICS_FILE, read_rows
from hfcls.errors import HfclsError
from hfcls.extras import pyplot
from hfcls.files import replacing


def load_rows(work_dir: Path) -> list:
    path = work_dir / METRICS_FILE
    if not path.is_file():
        raise HfclsError(f"{path} does not exist; pass the work dir of an hfcls-train run")
    rows = [row for row in read_rows(work_dir) if "epoch" in row]
    if not rows:
        raise HfclsError(f"{path} holds no epoch rows yet; plot after the first epoch")
    return rows


def export_records(work_dir: Path) -> dict:
    """{"best": record, "latest": record} of the run's exports that carry a training record."""
    records = {name: training_record(work_dir / name) for name in EXPORTS if (work_dir / name).is_dir()}
    return {name: record for name, record in records.items() if record is not None}


def series(rows: list, key: str) -> tuple:
    """(epochs, values) of the rows that have `key` (validation runs every evaluation.interval)."""
    kept = [row for row in rows if key in row]
    return [row["epoch"] for row in kept], [row[key] for row in kept]


def plot_curves(rows: list, out: Path, title: str = "", exports: dict | None = None) -> Path:
    """The three panels; `exports` ({name: training record}), marked on the accuracy panel."""
    plt = pyplot("hfcls-plot")
    from matplotlib.ticker import MaxNLocator

    fig, (loss_ax, lr_ax, acc_ax) = plt.subplots(1, 3, figsize=(15, 4))
    for key, label in (("loss", "train loss"), ("val_loss", "val loss")):
        loss_ax.plot(*series(rows, key), marker="o", label=label)
    loss_ax.set(title="loss", xlabel="epoch")
    loss_ax.legend()
    lr_ax.plot(*series(rows, "lr"), marker="o")
    lr_ax.set(title="learning rate (end of epoch)", xlabel="epoch")
    accuracy_keys = sorted({key for row in rows for key in row if key.startswith("val_accuracy")})
    for key in accuracy_keys:
        acc_ax.plot(*series(rows, key), marker="o", label=key.removeprefix("val_"))
    for name, record in (exports or {}).items():
        value = record["metrics"].get(accuracy_keys[0].removeprefix("val_")) if accuracy_keys else None
        if value is not None:
            label = f"{name}/ (epoch {record['epoch']})"
            acc_ax.plot(
                [record["epoch"]],
                [value],
                marker="*" if name == "best" else "s",
                markersize=12,
                linestyle="none",
                label=label,
            )
    acc_ax.set(title="validation accuracy (%)", xlabel="epoch")
    if accuracy_keys:
        acc_ax.legend()
    for ax in (loss_ax, lr_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    fig.suptitle(title)
    fig.tight_layout()
    with replacing(out) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return out
