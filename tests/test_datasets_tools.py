"""hfcls-verify and hfcls-browse on tiny generated data."""

import datasets
import numpy as np
import pytest
from conftest import make_image_folder, tiny_recipe_dict, write_recipe
from layouts import isolated_cache, write_mnist  # noqa: F401
from PIL import Image

from hfcls.tools import browse, verify


def test_verify_passes_clean_data(tiny_recipe, capsys):
    assert verify.cli([str(tiny_recipe)]) == 0
    assert "all 36 images in train, val decode and their labels fit the classes" in capsys.readouterr().out


def test_verify_lists_unreadable_files_and_out_of_range_labels(tmp_path, capsys):
    val = make_image_folder(tmp_path / "val", per_class=2)
    (val / "dog" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    pixels = [np.full((4, 4, 3), value, np.uint8) for value in (0, 100, 200)]
    saved = datasets.Dataset.from_dict({"image": pixels, "label": [0, 7, 2]}, features=features)
    # A cast does not check the range: such a label reaches disk and only verify notices.
    saved.cast_column("label", datasets.ClassLabel(names=["cat", "dog", "fox"])).save_to_disk(str(tmp_path / "saved"))
    recipe = tiny_recipe_dict(None, val, data={"train": {"type": "disk", "path": str(tmp_path / "saved")}})
    status = verify.cli([str(write_recipe(tmp_path / "r.yaml", recipe))])
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert lines[0] == "train: row 1 (image bytes): label 7 is outside [0, 3)"
    assert lines[1].startswith(f"val: cannot decode {val / 'dog' / '1.png'}: ")
    assert lines[2] == "2 bad of 9 images in train, val"


def test_verify_bad_recipe_is_one_line_and_status_2(tmp_path, capsys):
    recipe = tiny_recipe_dict(None, None, data={"train": {"type": "mnist", "root": str(tmp_path), "split": "tran"},
                                                "val": None})
    with pytest.raises(SystemExit) as exit_info:
        verify.cli([str(write_recipe(tmp_path / "r.yaml", recipe))])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: mnist: split must be one of train, test, got 'tran'\n"


def test_browse_saves_a_grid_of_transformed_samples(tmp_path, capsys):
    write_mnist(tmp_path / "mnist")
    spec = {"type": "mnist", "root": str(tmp_path / "mnist")}
    recipe = tiny_recipe_dict(None, None, data={"train": {**spec, "split": "train"}, "val": {**spec, "split": "test"}})
    path = write_recipe(tmp_path / "r.yaml", recipe)
    out = tmp_path / "grid.png"
    browse.cli([str(path), "--split", "val", "--n", "4", "--out", str(out)])
    assert capsys.readouterr().out == f"saved 4 val samples to {out}\n"
    with Image.open(out) as grid:
        assert grid.size == (400, 440)  # 2 x 2 panels of 2 x 2.2 inches at 100 dpi
        grey = np.asarray(grid.convert("L"))
    assert grey.min() < 50 and grey.max() == 255  # dark digits drawn on the white figure


def test_browse_unknown_split_is_an_error(tiny_recipe, tmp_path, capsys):
    with pytest.raises(SystemExit):
        browse.cli([str(tiny_recipe), "--split", "test", "--out", str(tmp_path / "g.png")])
    assert "defines no test data; splits: train, val" in capsys.readouterr().err


def test_browse_spreads_samples_over_classes_and_creates_the_out_folder(tiny_recipe, tmp_path, monkeypatch):
    import matplotlib.axes

    from hfcls.data.loaders import attach_transforms, build_datasets
    from hfcls.recipe import load_recipe

    recipe = load_recipe(tiny_recipe)
    ds = attach_transforms(build_datasets(recipe.data, recipe.seed), recipe.data)["train"]
    titles, set_title = [], matplotlib.axes.Axes.set_title
    monkeypatch.setattr(matplotlib.axes.Axes, "set_title",
                        lambda axis, title, **kw: titles.append(title) or set_title(axis, title, **kw))
    out = tmp_path / "new" / "folder" / "grid.png"
    assert browse.sample_grid(ds, ["cat", "dog", "fox"], 6, str(out)) == 6
    assert out.is_file()
    assert len(set(titles)) > 1  # the 24 rows are sorted by class: the first 6 would all be "cat"
