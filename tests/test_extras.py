"""The optional dependencies: a feature whose extra is missing says so in one line naming the extra."""

import logging
import sys

import pytest

from hfcls.api import train
from hfcls.bench.throughput import PeakMemory
from hfcls.errors import HfclsError
from hfcls.extras import is_installed, optional_import
from hfcls.recipe import recipe_from_dict

from commands import user_error
from conftest import make_image_folder, tiny_recipe_dict


@pytest.fixture
def without(monkeypatch):
    """without(*modules): those modules cannot be imported (as if not installed) for the test."""

    def block(*modules):
        for name in list(sys.modules):
            if name.split(".")[0] in modules:
                monkeypatch.delitem(sys.modules, name)
        for name in modules:
            monkeypatch.setitem(sys.modules, name, None)

    return block


def test_a_missing_package_is_named_with_its_extra(without):
    without("psutil")
    assert not is_installed("psutil") and is_installed("json")
    with pytest.raises(
        HfclsError, match='^the memory reading needs psutil, which is not installed; pip install "hfcls'
    ):
        optional_import("psutil", "bench", "the memory reading")
    with pytest.raises(HfclsError, match='psutil.*"hfcls\\[bench\\]"'):
        PeakMemory()


def test_pictures_need_the_plot_extra(without, tmp_path, command):
    without("matplotlib")
    image = make_image_folder(tmp_path / "images", per_class=1) / "cat" / "0.png"
    # Refused before the model is read.
    user_error(
        command("hfcls-demo", image, tmp_path / "model", "--out", tmp_path / "x.png"), "matplotlib", "hfcls[plot]"
    )


def test_training_logs_its_start_up_time_without_psutil(without, tmp_path, caplog):
    without("psutil")
    data = make_image_folder(tmp_path / "train", per_class=2), make_image_folder(tmp_path / "val", per_class=1)
    with caplog.at_level(logging.INFO, logger="hfcls.engine.loop"):
        train(recipe_from_dict(tiny_recipe_dict(*data, data={"batch_size": 2})), tmp_path / "w")
    [line] = [r.getMessage() for r in caplog.records if "first optimizer step" in r.getMessage()]
    assert "after training started" in line and 'pip install "hfcls[bench]"' in line
