"""A run's curves: loss, LR and validation accuracy per epoch from its metrics.jsonl."""

import pytest
from PIL import Image

from hfcls.analysis.curves import load_rows, plot_curves, series
from hfcls.errors import HfclsError


def test_plot_draws_the_curves(two_epoch_run, tmp_path):
    rows = load_rows(two_epoch_run)
    assert [row["epoch"] for row in rows] == [1, 2]
    assert series(rows, "val_accuracy_top1") == ([1, 2], [row["val_accuracy_top1"] for row in rows])
    out = plot_curves(rows, tmp_path / "new" / "curves.png", "tiny")
    assert out == tmp_path / "new" / "curves.png"
    with Image.open(out) as image:
        assert image.size == (1500, 400)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20  # not a blank canvas


def test_validation_every_other_epoch_keeps_its_own_epochs():
    rows = [{"epoch": 1, "loss": 2.0}, {"epoch": 2, "loss": 1.5, "val_loss": 1.4}, {"epoch": 3, "loss": 1.0}]
    assert series(rows, "val_loss") == ([2], [1.4])
    assert series(rows, "loss") == ([1, 2, 3], [2.0, 1.5, 1.0])


def test_without_metrics_is_a_clear_error(tmp_path):
    with pytest.raises(HfclsError, match="metrics.jsonl does not exist; pass the work dir of an hfcls-train run"):
        load_rows(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(HfclsError, match="holds no epoch rows yet"):
        load_rows(tmp_path)
