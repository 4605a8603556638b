"""A run's curves (hfcls-plot): loss, LR and validation accuracy per epoch, from its metrics.jsonl."""

from __future__ import annotations

from pathlib import Path

from hfcls.artifacts.run_dir import METRICS_FILE
from hfcls.errors import HfclsError
from hfcls.extras import pyplot
from hfcls.logs import read_jsonl


def load_rows(work_dir: Path) -> list:
    path = work_dir / METRICS_FILE
    if not path.is_file():
        raise HfclsError(f"{path} does not exist; pass the work dir of an hfcls-train run")
    rows = [row for row in read_jsonl(path) if "epoch" in row]
    if not rows:
        raise HfclsError(f"{path} holds no epoch rows yet; plot after the first epoch")
    return rows


def series(rows: list, key: str) -> tuple:
    """(epochs, values) of the rows that have `key` (validation runs every evaluation.interval)."""
    kept = [row for row in rows if key in row]
    return [row["epoch"] for row in kept], [row[key] for row in kept]


def plot_curves(rows: list, out: Path, title: str = "") -> Path:
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
    acc_ax.set(title="validation accuracy (%)", xlabel="epoch")
    if accuracy_keys:
        acc_ax.legend()
    for ax in (loss_ax, lr_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
