"""Publishing: every run ends with OUT-<sha256[:8]>.safetensors holding the trained weights; `publish`
does the same from any artifact; the file describes itself; a changed byte is refused."""

import datetime
import json
import shutil

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageClassification, pipeline

from hfcls.api import train
from hfcls.artifacts.checkpoint import EMA_FILE
from hfcls.artifacts.describe import safetensors_metadata
from hfcls.artifacts.loading import load_model
from hfcls.artifacts.publish import publish
from hfcls.artifacts.weights import file_sha256, verify_published
from hfcls.errors import HfclsError
from hfcls.recipe import load_recipe

from conftest import tiny_recipe_dict, write_recipe
from layouts import add_to_checkpoint


@pytest.fixture
def run(cifar_resnet_run):
    """A finished 1-epoch run of the tiny CIFAR ResNet: its work dir (shared: tests copy before changing it)."""
    return cifar_resnet_run


def published_files(folder):
    return sorted(folder.glob("*.safetensors"))


def assert_same_weights(a: dict, b: dict):
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_run_ends_with_a_hashed_file_of_the_final_weights(run):
    [published] = published_files(run / "publish")
    assert published.name == f"tiny_run-{file_sha256(published)[:8]}.safetensors"
    assert_same_weights(load_file(published), load_file(run / "checkpoints" / "epoch_1" / "model.safetensors"))
    with safe_open(str(published), framework="pt") as f:
        assert f.metadata()["format"] == "pt"  # as save_pretrained and timm mark PyTorch tensors
        metadata = json.loads(f.metadata()["hfcls"])
    # Its metadata keys in sorted order, not in the order of safetensors' hash map, which varies by call.
    assert published.read_bytes()[8:].startswith(b'{"__metadata__":{"format":"pt","hfcls":')
    assert metadata == safetensors_metadata(published)
    assert metadata["class_names"] == ["cat", "dog", "fox"]
    assert metadata["config"]["model_type"] == "cifar_resnet"
    assert metadata["preprocessor"] == json.loads((run / "latest" / "preprocessor_config.json").read_text())
    folder = published.with_suffix("")
    # cifar_resnet is hfcls's own: its code travels beside the weights, for transformers alone (auto_map)
    assert {p.name for p in folder.iterdir()} == {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "training_record.json",
        "cifar_resnet.py",
    }
    assert (
        json.loads((folder / "config.json").read_text())["auto_map"]["AutoModelForImageClassification"]
        == "cifar_resnet.CifarResNetForImageClassification"
    )


def test_published_model_predicts_as_the_source(run):
    [published] = published_files(run / "publish")
    model = load_model(published)
    source = AutoModelForImageClassification.from_pretrained(run / "latest").eval()
    images = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(images).logits, source(images).logits)
    assert model.config.id2label == {0: "cat", 1: "dog", 2: "fox"}
    # The custom architecture loads by model_type in transformers' own pipeline too.
    predictions = pipeline("image-classification", model=str(published.with_suffix("")))(
        Image.new("RGB", (16, 16), (40, 200, 40)), top_k=3
    )
    assert sorted(p["label"] for p in predictions) == ["cat", "dog", "fox"]


def test_a_flipped_byte_is_refused(run, tmp_path):
    [published] = published_files(run / "publish")
    copy = tmp_path / published.name
    data = bytearray(published.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    with pytest.raises(HfclsError, match=r"hashes to [0-9a-f]{8}, not the [0-9a-f]{8} in its name"):
        load_model(copy)
    assert verify_published(published) == file_sha256(published)


def test_a_file_without_hash_is_refused(run, tmp_path):
    [published] = published_files(run / "publish")
    plain = tmp_path / "model.safetensors"
    shutil.copy(published, plain)
    with pytest.raises(HfclsError, match="does not end in -<8 hex digits>"):
        verify_published(plain)


def test_publishes_a_checkpoint_with_date_reproducibly(run, tmp_path):
    checkpoint = run / "checkpoints" / "epoch_1"
    published = publish(checkpoint, tmp_path / "release" / "tiny", date=True)
    assert published_files(tmp_path / "release") == [published]
    assert published.name == f"tiny_{datetime.date.today():%Y%m%d}-{file_sha256(published)[:8]}.safetensors"
    before = published.read_bytes()
    with pytest.raises(HfclsError, match="is a file already; nothing was written"):  # same weights, same name
        publish(checkpoint, tmp_path / "release" / "tiny.safetensors", date=True)
    again = publish(checkpoint, tmp_path / "release" / "tiny.safetensors", date=True, overwrite=True)
    assert again == published and again.read_bytes() == before  # same weights, same bytes
    [run_file] = published_files(run / "publish")
    assert published.name.split("-")[-1] == run_file.name.split("-")[-1]


def test_ema_weights_are_preferred_unless_no_ema(run, tmp_path):
    """A checkpoint keeps the EMA by name (ema.safetensors) beside the raw weights."""
    work_dir = shutil.copytree(run, tmp_path / "ema_run", ignore=shutil.ignore_patterns("publish"))
    checkpoint = work_dir / "checkpoints" / "epoch_1"
    raw = load_file(checkpoint / "model.safetensors")
    ema = {key: value * 0.5 if value.is_floating_point() else value for key, value in raw.items()}
    add_to_checkpoint(checkpoint, EMA_FILE, ema)

    assert_same_weights(load_file(publish(checkpoint, tmp_path / "out" / "with_ema")), ema)
    assert_same_weights(load_file(publish(checkpoint, tmp_path / "out" / "ema", use_ema=True)), ema)
    assert_same_weights(load_file(publish(checkpoint, tmp_path / "out" / "raw", use_ema=False)), raw)


def test_publishes_a_hugging_face_folder(run, tmp_path):
    published = publish(run / "best", tmp_path / "from_folder")
    source = AutoModelForImageClassification.from_pretrained(run / "best")
    assert_same_weights(load_file(published), source.state_dict())
    assert (published.with_suffix("") / "preprocessor_config.json").read_text() == (
        run / "best" / "preprocessor_config.json"
    ).read_text()


def test_a_checkpoint_without_exports_publishes_on_its_own(run, tmp_path):
    """A run stopped before its first evaluation has no latest/: the checkpoint's own config.json and
    preprocessor_config.json describe the model."""
    work_dir = shutil.copytree(run, tmp_path / "early", ignore=shutil.ignore_patterns("publish", "latest", "best"))
    published = publish(work_dir / "checkpoints" / "epoch_1", tmp_path / "out" / "early")
    [run_file] = published_files(run / "publish")
    assert published.name.split("-")[-1] == run_file.name.split("-")[-1]  # byte-identical to the run's own


def test_a_run_publishes_the_ema_it_evaluated_as_its_checkpoint_does(tmp_path, tiny_data):
    """The run publishes from memory what it evaluated (here the EMA): the bytes its checkpoint publishes to."""
    recipe = write_recipe(
        tmp_path / "ema.yaml",
        tiny_recipe_dict(*tiny_data, train={"ema": {"decay": 0.5}, "publish": True, "log_with": []}),
    )
    train(load_recipe(recipe), tmp_path / "run")
    checkpoint = tmp_path / "run" / "checkpoints" / "epoch_1"
    [run_file] = published_files(tmp_path / "run" / "publish")
    assert_same_weights(load_file(run_file), load_file(checkpoint / EMA_FILE))
    again = publish(checkpoint, tmp_path / "out" / "run")
    assert again.name == run_file.name and again.read_bytes() == run_file.read_bytes()


def test_a_bare_weights_file_publishes_with_its_recipe(run, tmp_path):
    weights = shutil.copy(run / "checkpoints" / "epoch_1" / "model.safetensors", tmp_path / "weights.safetensors")
    with pytest.raises(HfclsError, match="holds weights only; pass the recipe it was trained with"):
        publish(weights, tmp_path / "out" / "bare")
    published = publish(weights, tmp_path / "out" / "bare", recipe=load_recipe(run / "recipe.yaml"))
    [run_file] = published_files(run / "publish")
    assert published.name.split("-")[-1] == run_file.name.split("-")[-1]


def test_unregistered_architecture_is_named(tmp_path):
    unsigned = tmp_path / "unsigned.safetensors"
    metadata = {"config": {"model_type": "not_registered_net"}, "class_names": ["a"], "preprocessor": {}}
    save_file({"w": torch.zeros(1)}, unsigned, metadata={"hfcls": json.dumps(metadata)})
    published = unsigned.rename(tmp_path / f"net-{file_sha256(unsigned)[:8]}.safetensors")
    with pytest.raises(HfclsError, match="model_type 'not_registered_net' is not registered with transformers"):
        load_model(published)
