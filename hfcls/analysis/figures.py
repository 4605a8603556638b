"""matplotlib for the analysis pictures (CAM overlays, failure grids, LR curves): off-screen, saved where asked."""

from __future__ import annotations

from pathlib import Path

from hfcls import extras
from hfcls.files import replacing


def pyplot():
    """matplotlib.pyplot on the Agg backend (the plot extra)."""
    return extras.pyplot("the analysis pictures")


def save_figure(fig, out) -> Path:
    """Write `fig` to `out` (creating its folder), whole or not at all, and free it."""
    out = Path(out)
    fig.tight_layout()
    with replacing(out) as tmp:
        fig.savefig(tmp, dpi=100)
    pyplot().close(fig)
    return out
