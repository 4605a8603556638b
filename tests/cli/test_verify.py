"""hfcls-verify's command line: what it prints, and its exit status (0 clean, 1 bad images, 2 a bad recipe)."""

import pytest

from hfcls.cli.verify import main

from conftest import tiny_recipe_dict, write_recipe
from layouts import bad_splits_recipe, isolated_cache  # noqa: F401


def test_verify_passes_clean_data(tiny_recipe, capsys):
    assert main([str(tiny_recipe)]) == 0
    assert "all 36 images in train, val decode and their labels fit the classes" in capsys.readouterr().out


def test_verify_lists_unreadable_files_and_out_of_range_labels(tmp_path, capsys):
    recipe, val = bad_splits_recipe(tmp_path)
    status = main([str(recipe), "--workers", "1"])
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert lines[0] == "train: row 1 (image bytes): label 7 is outside [0, 3)"
    assert lines[1].startswith(f"val: cannot decode {val / 'dog' / '1.png'}: ")
    assert lines[2] == "2 bad of 9 images in train, val"


def test_overrides_apply(tiny_recipe, capsys):
    assert main([str(tiny_recipe), "data.val=null"]) == 0
    assert "all 24 images in train decode" in capsys.readouterr().out


def test_verify_bad_recipe_is_one_line_and_status_2(tmp_path, capsys):
    recipe = tiny_recipe_dict(
        None, None, data={"train": {"type": "mnist", "root": str(tmp_path), "split": "tran"}, "val": None}
    )
    with pytest.raises(SystemExit) as exit_info:
        main([str(write_recipe(tmp_path / "r.yaml", recipe))])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: mnist: split must be one of train, test, got 'tran'\n"
