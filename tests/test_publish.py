"""Publishing: every run ends with OUT-<sha256[:8]>.safetensors holding the trained
weights; hfcls-publish does the same from a checkpoint or a folder; a changed byte is refused."""

import datetime
import json
import shutil

import pytest
import torch
from safetensors import safe_open
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import AutoModelForImageClassification, pipeline

from conftest import make_image_folder, tiny_recipe_dict
from hfcls.errors import HfclsError
from hfcls.publish import cli, file_sha256, load_published, publish, verify_published
from hfcls.recipe import recipe_from_dict

# The CIFAR ResNet, named by model_type in a recipe like any transformers architecture.
TINY_CIFAR_RESNET = {"model_type": "cifar_resnet", "stem_channels": 8, "hidden_sizes": [8, 16], "depths": [1, 1]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 1-epoch run: its work dir."""
    from hfcls.engine import train

    root = tmp_path_factory.mktemp("publish")
    train_dir = make_image_folder(root / "data" / "train", per_class=8, seed=0)
    val_dir = make_image_folder(root / "data" / "val", per_class=4, seed=1)
    recipe = recipe_from_dict(tiny_recipe_dict(train_dir, val_dir, model={"config": TINY_CIFAR_RESNET}))
    work_dir = root / "tiny_run"
    train(recipe, work_dir)
    return work_dir


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
        metadata = json.loads(f.metadata()["hfcls"])
    assert metadata["class_names"] == ["cat", "dog", "fox"]
    assert metadata["config"]["model_type"] == "cifar_resnet"
    folder = published.with_suffix("")
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "preprocessor_config.json"}


def test_published_model_predicts_as_the_source(run):
    [published] = published_files(run / "publish")
    model = load_published(published)
    source = AutoModelForImageClassification.from_pretrained(run / "latest").eval()
    images = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(model(images).logits, source(images).logits)
    assert model.config.id2label == {0: "cat", 1: "dog", 2: "fox"}
    # The custom architecture loads by model_type in transformers' own pipeline too.
    predictions = pipeline("image-classification", model=str(published.with_suffix("")))(
        Image.new("RGB", (16, 16), (40, 200, 40)), top_k=3)
    assert sorted(p["label"] for p in predictions) == ["cat", "dog", "fox"]


def test_a_flipped_byte_is_refused(run, tmp_path):
    [published] = published_files(run / "publish")
    copy = tmp_path / published.name
    data = bytearray(published.read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    with pytest.raises(HfclsError, match=r"hashes to [0-9a-f]{8}, not the [0-9a-f]{8} in its name"):
        load_published(copy)
    assert verify_published(published) == file_sha256(published)


def test_a_file_without_hash_is_refused(run, tmp_path):
    [published] = published_files(run / "publish")
    plain = tmp_path / "model.safetensors"
    shutil.copy(published, plain)
    with pytest.raises(HfclsError, match="does not end in -<8 hex digits>"):
        verify_published(plain)


def test_cli_publishes_a_checkpoint_with_date_reproducibly(run, tmp_path, capsys):
    checkpoint = run / "checkpoints" / "epoch_1"
    cli([str(checkpoint), str(tmp_path / "release" / "tiny"), "--date"])
    printed = capsys.readouterr().out.strip()
    [published] = published_files(tmp_path / "release")
    assert printed == str(published)
    assert published.name == f"tiny_{datetime.date.today():%Y%m%d}-{file_sha256(published)[:8]}.safetensors"
    again = publish(checkpoint, tmp_path / "release" / "tiny.safetensors", date=True)
    assert again == published  # same weights, same bytes, same name
    [run_file] = published_files(run / "publish")
    assert published.name.split("-")[-1] == run_file.name.split("-")[-1]


def test_ema_weights_are_preferred_unless_no_ema(run, tmp_path):
    """Accelerate saves registered objects (scheduler, EMA) as custom_checkpoint_<i>.pkl."""
    work_dir = shutil.copytree(run, tmp_path / "ema_run", ignore=shutil.ignore_patterns("publish"))
    checkpoint = work_dir / "checkpoints" / "epoch_1"
    raw = load_file(checkpoint / "model.safetensors")
    ema = {key: value * 0.5 if value.is_floating_point() else value for key, value in raw.items()}
    torch.save(ema, checkpoint / "custom_checkpoint_1.pkl")

    assert_same_weights(load_file(publish(checkpoint, tmp_path / "out" / "with_ema")), ema)
    assert_same_weights(load_file(publish(checkpoint, tmp_path / "out" / "raw", use_ema=False)), raw)


def test_publishes_a_hugging_face_folder(run, tmp_path):
    published = publish(run / "best", tmp_path / "from_folder")
    source = AutoModelForImageClassification.from_pretrained(run / "best")
    assert_same_weights(load_file(published), source.state_dict())
    assert (published.with_suffix("") / "preprocessor_config.json").read_text() == \
        (run / "best" / "preprocessor_config.json").read_text()


def test_not_a_model_folder_is_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli([str(tmp_path), str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "neither a Hugging Face folder" in err[0]


def test_push_needs_publish(tmp_path):
    recipe = tiny_recipe_dict(tmp_path, tmp_path, train={"epochs": 1, "publish": False, "push_to_hub": "me/model"})
    with pytest.raises(HfclsError, match="train.push_to_hub uploads the published model"):
        recipe_from_dict(recipe)


def test_checkpoint_without_exports_rebuilds_from_recipe_and_data(run, tmp_path):
    """A run stopped before its first evaluation has no latest/: the recipe and the
    training data's class names describe the model instead."""
    work_dir = shutil.copytree(run, tmp_path / "early", ignore=shutil.ignore_patterns("publish", "latest", "best"))
    published = publish(work_dir / "checkpoints" / "epoch_1", tmp_path / "out" / "early")
    [run_file] = published_files(run / "publish")
    assert published.name.split("-")[-1] == run_file.name.split("-")[-1]  # byte-identical to the run's own


def test_unregistered_architecture_is_named(tmp_path):
    unsigned = tmp_path / "unsigned.safetensors"
    metadata = {"config": {"model_type": "not_registered_net"}, "class_names": ["a"]}
    save_file({"w": torch.zeros(1)}, unsigned, metadata={"hfcls": json.dumps(metadata)})
    published = unsigned.rename(tmp_path / f"net-{file_sha256(unsigned)[:8]}.safetensors")
    with pytest.raises(HfclsError, match="model_type 'not_registered_net' is not registered with transformers"):
        load_published(published)
