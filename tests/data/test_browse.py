"""hfcls-browse's library side: transformed samples drawn as one grid, titled with their classes."""

import numpy as np
import pytest
from PIL import Image

from hfcls.data.browse import browse, sample_grid
from hfcls.data.build import build_datasets, with_transform
from hfcls.errors import HfclsError
from hfcls.recipe import load_recipe, recipe_from_dict

from conftest import make_image_folder, tiny_recipe_dict, write_recipe
from layouts import isolated_cache, save_numbered, write_mnist  # noqa: F401


def test_browse_saves_a_grid_of_transformed_samples(tmp_path):
    write_mnist(tmp_path / "mnist")
    spec = {"type": "mnist", "root": str(tmp_path / "mnist")}
    recipe = tiny_recipe_dict(None, None, data={"train": {**spec, "split": "train"}, "val": {**spec, "split": "test"}})
    out = tmp_path / "grid.png"
    assert browse(load_recipe(write_recipe(tmp_path / "r.yaml", recipe)), "val", 4, out) == 4
    with Image.open(out) as grid:
        assert grid.size == (400, 440)  # 2 x 2 panels of 2 x 2.2 inches at 100 dpi
        grey = np.asarray(grid.convert("L"))
    assert grey.min() < 50 and grey.max() == 255  # dark digits drawn on the white figure


def test_browse_unknown_split_or_count_is_an_error(tiny_recipe, tmp_path):
    with pytest.raises(HfclsError, match="defines no test data; splits: train, val"):
        browse(load_recipe(tiny_recipe), "test", 4, tmp_path / "g.png")
    with pytest.raises(HfclsError, match="^n must be at least 1, got 0") as error:
        browse(load_recipe(tiny_recipe), "train", 0, tmp_path / "g.png")
    assert error.value.param == "n"


def test_browse_spreads_samples_over_classes_and_creates_the_out_folder(tiny_recipe, tmp_path, monkeypatch):
    import matplotlib.axes

    recipe = load_recipe(tiny_recipe)
    ds = with_transform(
        build_datasets(recipe.data, recipe.seed)["train"],
        recipe.data.train_pipeline,
        "data.train_pipeline",
        recipe.data.to_rgb,
    )
    titles, set_title = [], matplotlib.axes.Axes.set_title
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "set_title",
        lambda axis, title, **kw: titles.append(title) or set_title(axis, title, **kw),
    )
    out = tmp_path / "new" / "folder" / "grid.png"
    assert sample_grid(ds, ["cat", "dog", "fox"], 6, str(out)) == 6
    assert out.is_file()
    assert len(set(titles)) > 1  # the 24 rows are sorted by class: the first 6 would all be "cat"


def test_browse_reads_streams(tmp_path):
    save_numbered(tmp_path / "saved", count=5)
    val = make_image_folder(tmp_path / "val", per_class=1)
    train_spec = {"type": "disk", "path": str(tmp_path / "saved"), "streaming": True}
    recipe = recipe_from_dict(tiny_recipe_dict(None, val, data={"train": train_spec, "steps_per_epoch": 1}))
    assert browse(recipe, "train", 9, tmp_path / "grid.png") == 5  # the stream holds 5
    assert (tmp_path / "grid.png").is_file()


def test_multi_label_titles_name_every_class(tmp_path, monkeypatch):
    """VOC's difficult-only classes in brackets; an image without classes says so."""
    import matplotlib.axes

    from layouts import write_voc

    voc = {"type": "voc", "root": str(write_voc(tmp_path / "VOC2007"))}
    recipe = recipe_from_dict(tiny_recipe_dict(None, None, data={"train": voc, "val": voc}))
    titles, set_title = [], matplotlib.axes.Axes.set_title
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "set_title",
        lambda axis, title, **kw: titles.append(title) or set_title(axis, title, **kw),
    )
    assert browse(recipe, "val", 3, tmp_path / "grid.png") == 3
    assert titles == ["dog, person", "cat, (chair)", "(bird)"]
