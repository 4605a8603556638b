"""hfcls-browse's command line: --split, --n, --out, overrides, and one-line errors."""

import pytest
from PIL import Image

from hfcls.cli.browse import main

from conftest import tiny_recipe_dict, write_recipe
from layouts import isolated_cache, write_mnist  # noqa: F401


def test_browse_saves_the_grid_and_says_so(tmp_path, capsys):
    write_mnist(tmp_path / "mnist")
    spec = {"type": "mnist", "root": str(tmp_path / "mnist")}
    recipe = tiny_recipe_dict(None, None, data={"train": {**spec, "split": "train"}, "val": {**spec, "split": "test"}})
    path = write_recipe(tmp_path / "r.yaml", recipe)
    out = tmp_path / "grid.png"
    main([str(path), "--split", "val", "--n", "4", "--out", str(out)])
    assert capsys.readouterr().out == f"saved 4 val samples to {out}\n"
    with Image.open(out) as grid:
        assert grid.size == (400, 440)  # 2 x 2 panels of 2 x 2.2 inches at 100 dpi
    main([str(path), "data.train_pipeline=[]", "--n", "6", "--columns", "3", "--out", str(out), "--overwrite"])
    assert capsys.readouterr().out == f"saved 6 train samples to {out}\n"
    with Image.open(out) as grid:
        assert grid.size == (600, 440)  # 3 x 2 panels


def test_browse_unknown_split_is_an_error(tiny_recipe, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tiny_recipe), "--split", "test", "--out", str(tmp_path / "g.png")])
    assert exit_info.value.code == 2
    assert "defines no test data; splits: train, val" in capsys.readouterr().err
