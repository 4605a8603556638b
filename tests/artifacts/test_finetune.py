"""load_from: a new run from another model's weights, its head re-initialised for another class count."""

import pytest
import torch
from safetensors.torch import load_file

from hfcls.api import train
from hfcls.artifacts.checkpoint import read_state
from hfcls.errors import HfclsError
from hfcls.recipe import load_recipe

from conftest import make_image_folder, tiny_recipe_dict, write_recipe


def recipe_for(tmp_path, folders, name="r", overrides=(), **sections):
    return load_recipe(write_recipe(tmp_path / f"{name}.yaml", tiny_recipe_dict(*folders, **sections)), overrides)


TEN_COLOURS = {f"c{i}": (25 * i, 255 - 25 * i, (90 * i) % 256) for i in range(10)}


@pytest.fixture
def ten_class_run(tmp_path):
    folders = [make_image_folder(tmp_path / "ten" / split, per_class=2, classes=TEN_COLOURS) for split in ("a", "b")]
    train(recipe_for(tmp_path, folders, "ten"), tmp_path / "ten_run")
    return tmp_path / "ten_run"


@pytest.mark.parametrize("source", ["checkpoints/epoch_1", "best"])
def test_load_from_a_ten_class_model_into_three_classes(tmp_path, tiny_data, ten_class_run, source, caplog):
    # lr 0: what the run starts from is what it ends with (parameters; BN statistics still move).
    recipe = recipe_for(tmp_path, tiny_data, optim={"lr": 0.0})
    train(recipe, tmp_path / "w", load_from=str(ten_class_run / source))
    assert "re-initialised (shape differs, another class count): classifier.1.weight, classifier.1.bias" in caplog.text
    loaded = load_file(tmp_path / "w" / "checkpoints" / "epoch_1" / "model.safetensors")
    original = load_file(ten_class_run / "checkpoints" / "epoch_1" / "model.safetensors")
    key = "resnet.encoder.stages.1.layers.0.layer.1.convolution.weight"
    assert torch.equal(loaded[key], original[key])
    assert loaded["classifier.1.weight"].shape == (3, 16) and original["classifier.1.weight"].shape == (10, 16)
    assert read_state(tmp_path / "w" / "checkpoints" / "epoch_1").epoch == 1  # started at epoch 0


def test_load_from_another_architecture_names_key_and_shapes(tmp_path, tiny_data, ten_class_run):
    recipe = recipe_for(tmp_path, tiny_data, overrides=["model.config.hidden_sizes=[8,12]"])
    # The first differing key in the model's own order.
    with pytest.raises(
        HfclsError,
        match=r"resnet\.encoder\.stages\.1\.layers\.0\.shortcut\.convolution\.weight has "
        r"shape \(16, 8, 1, 1\) in the checkpoint but \(12, 8, 1, 1\) in the recipe's",
    ):
        train(recipe, tmp_path / "w", load_from=str(ten_class_run / "best"))
    recipe = recipe_for(tmp_path, tiny_data, overrides=["model.config.depths=[1,2]"])
    with pytest.raises(HfclsError, match=r"the checkpoint has no resnet\.encoder\.stages\.1\.layers\.1\.\S+ \(shape"):
        train(recipe, tmp_path / "w2", load_from=str(ten_class_run / "best"))


def test_load_from_unknown_hub_id_offline(tmp_path, tiny_data):
    with pytest.raises(
        HfclsError, match="^load_from nobody/no-such-model: not a local path, and not loadable from the Hub"
    ):
        train(recipe_for(tmp_path, tiny_data), tmp_path / "w", load_from="nobody/no-such-model")
