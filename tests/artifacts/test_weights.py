"""The one artifact reader: which kind a path is, its weights (the EMA by name), and --load-from."""

import shutil

import pytest
import torch
from conftest import make_image_folder, tiny_recipe_dict, write_recipe
from layouts import add_to_checkpoint
from safetensors.torch import load_file

from hfcls.api import train
from hfcls.artifacts.checkpoint import EMA_FILE, read_state
from hfcls.artifacts.loading import load_model
from hfcls.artifacts.weights import file_sha256, inspect_artifact, load_state_dict, verify_published
from hfcls.errors import HfclsError
from hfcls.recipe import load_recipe


def recipe_for(tmp_path, folders, name="r", overrides=(), **sections):
    return load_recipe(write_recipe(tmp_path / f"{name}.yaml", tiny_recipe_dict(*folders, **sections)), overrides)


def test_verify_published(tmp_path):
    content = b"published weights"
    plain = tmp_path / "model.safetensors"
    plain.write_bytes(content)
    assert inspect_artifact(plain).kind == "weights"  # no hash in the name: nothing to check
    good = tmp_path / f"model-{file_sha256(plain)[:8]}.safetensors"
    good.write_bytes(content)
    assert inspect_artifact(good).kind == "published"
    assert verify_published(good) == file_sha256(good)
    good.write_bytes(content + b"!")
    with pytest.raises(HfclsError, match="corrupt or was modified"):
        verify_published(good)


def test_every_kind_is_recognised_with_its_run(two_epoch_run, tmp_path):
    run = two_epoch_run
    [published] = sorted((run / "publish").glob("*.safetensors"))
    kinds = {path: inspect_artifact(path).kind for path in (run / "best", run / "latest", run / "checkpoints" /
                                                            "epoch_1", published, published.with_suffix(""))}
    assert list(kinds.values()) == ["hf", "hf", "checkpoint", "published", "hf"]
    assert all(inspect_artifact(path).work_dir == run.resolve() for path in kinds)
    bare = shutil.copy(published, tmp_path / "weights.safetensors")
    assert (inspect_artifact(bare).kind, inspect_artifact(bare).work_dir) == ("weights", None)


def written(path, content=b""):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda folder: folder / "missing", "does not exist; pass a best/ or latest/ folder"),
    (lambda folder: written(folder / "x.txt"), "is not a folder or a .safetensors file"),
    (lambda folder: folder, "is not a model folder"),
    (lambda folder: written(folder / "model.safetensors").parent, "an incomplete checkpoint"),
], ids=["missing", "other-file", "empty-folder", "interrupted-save"])
def test_what_is_no_artifact_is_named(tmp_path, make, message):
    with pytest.raises(HfclsError, match=message):
        inspect_artifact(make(tmp_path))


def test_the_ema_of_a_checkpoint_is_read_by_its_file_name(two_epoch_run, tmp_path):
    work_dir = shutil.copytree(two_epoch_run, tmp_path / "run", ignore=shutil.ignore_patterns("publish"))
    checkpoint = work_dir / "checkpoints" / "epoch_2"
    raw = load_file(checkpoint / "model.safetensors")
    with pytest.raises(HfclsError, match="holds no EMA weights"):
        load_state_dict(checkpoint, use_ema=True)
    assert load_state_dict(checkpoint).keys() == raw.keys()
    ema = {key: value * 0.5 if value.is_floating_point() else value for key, value in raw.items()}
    add_to_checkpoint(checkpoint, EMA_FILE, ema)
    for use_ema, expected in ((None, ema), (True, ema), (False, raw)):
        got = load_state_dict(checkpoint, use_ema=use_ema)
        assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got), use_ema
    model = load_model(checkpoint, use_ema=False)
    assert torch.equal(model.state_dict()["classifier.1.weight"], raw["classifier.1.weight"])
    assert not model.training and model.config.id2label == {0: "cat", 1: "dog", 2: "fox"}
    with pytest.raises(HfclsError, match="holds one set of weights"):
        load_state_dict(work_dir / "best", use_ema=False)


# ----------------------------------------------------------------------------- --load-from

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
    with pytest.raises(HfclsError, match=r"resnet\.encoder\.stages\.1\.layers\.0\.shortcut\.convolution\.weight has "
                                         r"shape \(16, 8, 1, 1\) in the checkpoint but \(12, 8, 1, 1\) in the recipe's"):
        train(recipe, tmp_path / "w", load_from=str(ten_class_run / "best"))
    recipe = recipe_for(tmp_path, tiny_data, overrides=["model.config.depths=[1,2]"])
    with pytest.raises(HfclsError, match=r"the checkpoint has no resnet\.encoder\.stages\.1\.layers\.1\.\S+ \(shape"):
        train(recipe, tmp_path / "w2", load_from=str(ten_class_run / "best"))


def test_load_from_unknown_hub_id_offline(tmp_path, tiny_data):
    with pytest.raises(HfclsError, match="not a local path, and not loadable from the Hub"):
        train(recipe_for(tmp_path, tiny_data), tmp_path / "w", load_from="nobody/no-such-model")
