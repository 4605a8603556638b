"""The one artifact reader: which kind a path is, its weights (the EMA by name), a published file's hash."""

import shutil

import pytest
import torch
from safetensors.torch import load_file

from hfcls.artifacts.checkpoint import EMA_FILE
from hfcls.artifacts.loading import load_model
from hfcls.artifacts.weights import file_sha256, inspect_artifact, load_state_dict, verify_published
from hfcls.errors import HfclsError

from layouts import add_to_checkpoint


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
    kinds = {
        path: inspect_artifact(path).kind
        for path in (
            run / "best",
            run / "latest",
            run / "checkpoints" / "epoch_1",
            published,
            published.with_suffix(""),
        )
    }
    assert list(kinds.values()) == ["hf", "hf", "checkpoint", "published", "hf"]
    assert all(inspect_artifact(path).work_dir == run.resolve() for path in kinds)
    bare = shutil.copy(published, tmp_path / "weights.safetensors")
    assert (inspect_artifact(bare).kind, inspect_artifact(bare).work_dir) == ("weights", None)


def written(path, content=b""):
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda folder: folder / "missing", "does not exist; pass a best/ or latest/ folder"),
        (lambda folder: written(folder / "x.txt"), "is not a folder or a .safetensors file"),
        (lambda folder: folder, "is not a model folder"),
        (lambda folder: written(folder / "model.safetensors").parent, "an incomplete checkpoint"),
    ],
    ids=["missing", "other-file", "empty-folder", "interrupted-save"],
)
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
