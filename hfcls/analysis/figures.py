"""matplotlib for the analysis pictures (CAM overlays, failure grids, LR curves): off-screen, saved where asked."""

from __future__ import annotations

from pathlib import Path

from hfcls import extras


def pyplot():
    """matplotlib.pyplot on the Agg backend (the plot extra)."""
    return extras.pyplot("the analysis pictures")


def save_figure(fig, out) -> Path:
    """Write `fig` to `out` (creating its folder) and free it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    pyplot().close(fig)
    return out
