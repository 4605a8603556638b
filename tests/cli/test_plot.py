"""hfcls-plot's command line: WORK_DIR [--out], the file written, one-line errors."""

import pytest
from PIL import Image

from hfcls.cli.plot import main


def test_plot_writes_out_or_into_the_work_dir(two_epoch_run, tmp_path, capsys):
    main([str(two_epoch_run), "--out", str(tmp_path / "curves.png")])
    assert capsys.readouterr().out.strip() == str(tmp_path / "curves.png")
    with Image.open(tmp_path / "curves.png") as image:
        assert image.size == (1500, 400)
    work = tmp_path / "work"
    work.mkdir()
    (work / "metrics.jsonl").write_text((two_epoch_run / "metrics.jsonl").read_text())
    main([str(work)])
    assert (work / "curves.png").is_file()


def test_plot_without_metrics_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "metrics.jsonl does not exist" in capsys.readouterr().err
