"""Pushing to the Hub: the staged folder transformers.pipeline loads, with a card of the run's real metrics;
the upload sends that folder to HfApi (network calls intercepted by tests' FakeHub)."""

import shutil

import pytest
from huggingface_hub import constants
from PIL import Image
from transformers import pipeline

from hfcls.artifacts.hub import push, stage
from hfcls.artifacts.loading import load_model
from hfcls.artifacts.publish import publish_run
from hfcls.errors import HfclsError
from hfcls.logs import read_jsonl
from hfcls.recipe import load_recipe

from conftest import FakeHub


@pytest.fixture
def run(two_epoch_run):
    """A finished 2-epoch run of the tiny ResNet (evaluated after each epoch): its work dir, shared."""
    return two_epoch_run


def final_metrics(work_dir):
    return read_jsonl(work_dir / "metrics.jsonl")[-1]


def test_staged_folder_loads_in_pipeline_and_card_has_metrics(run, tmp_path):
    [published] = sorted((run / "publish").glob("*.safetensors"))
    out = stage(published.with_suffix(""), "me/tiny-colours", tmp_path / "staged")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "example.png",
        "model.safetensors",
        "preprocessor_config.json",
        "training_record.json",  # which weights these are: epoch, step, validation metrics
    ]

    card = (out / "README.md").read_text()
    row = final_metrics(run)
    assert row["epoch"] == 2
    assert "Validation set, epoch 2 (scores in %):" in card
    assert f"| accuracy_top1 | {row['val_accuracy_top1']:.4g} |" in card
    assert f"| loss | {row['val_loss']:.4g} |" in card
    assert "In label-index order: `cat`, `dog`, `fox`" in card
    assert 'pipeline("image-classification", model="me/tiny-colours")' in card
    assert (run / "recipe.yaml").read_text() in card

    classifier = pipeline("image-classification", model=str(out))
    predictions = classifier(Image.new("RGB", (16, 16), (200, 40, 40)), top_k=3)
    assert sorted(p["label"] for p in predictions) == ["cat", "dog", "fox"]
    assert sum(p["score"] for p in predictions) == pytest.approx(1.0, abs=1e-4)


def test_card_for_best_reports_the_best_epoch(run, tmp_path):
    stage(run / "best", "me/tiny", tmp_path / "best")
    rows = read_jsonl(run / "metrics.jsonl")
    best = max(rows, key=lambda row: row["val_accuracy_top1"])
    assert f"Validation set, epoch {best['epoch']} (" in (tmp_path / "best" / "README.md").read_text()


def test_a_checkpoint_is_staged_as_a_hugging_face_folder(run, tmp_path):
    out = stage(run / "checkpoints" / "epoch_2", "me/tiny", tmp_path / "from_checkpoint")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "example.png",
        "model.safetensors",
        "preprocessor_config.json",
        "training_record.json",  # which weights these are: epoch, step, validation metrics
    ]
    assert "Validation set, epoch 2 (" in (out / "README.md").read_text()


def test_stage_refuses_a_folder_that_holds_files(run, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(HfclsError, match="is a non-empty folder already; nothing was written"):
        stage(run / "latest", "me/tiny", out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    stage(run / "latest", "me/tiny", tmp_path / "empty")  # an empty folder, or a new one, is fine
    (tmp_path / "empty2").mkdir()
    stage(run / "latest", "me/tiny", tmp_path / "empty2")


def test_push_uploads_the_staged_folder(run, monkeypatch):
    hub = FakeHub(monkeypatch)
    urls = push(run / "latest", "me/tiny", private=True, revision="v1", commit_message="first")
    assert urls == ["https://huggingface.co/me/tiny/commit/abc"]
    (create, name, create_args), (branch, _, branch_args), (upload, repo, upload_args) = hub.calls
    assert (create, name, create_args) == (
        "create_repo",
        "me/tiny",
        {"private": True, "exist_ok": True, "repo_type": "model"},
    )
    assert (branch, branch_args) == ("create_branch", {"branch": "v1", "exist_ok": True})
    assert (upload, repo, upload_args["revision"], upload_args["commit_message"]) == (
        "upload_folder",
        "me/tiny",
        "v1",
        "first",
    )
    files = upload_args["files"]
    assert set(files) == {
        "README.md",
        "config.json",
        "example.png",
        "model.safetensors",
        "preprocessor_config.json",
        "training_record.json",
    }
    assert files["model.safetensors"] == (run / "latest" / "model.safetensors").read_bytes()
    assert b"| accuracy_top1 |" in files["README.md"]


def test_end_of_training_pushes_the_published_folder(run, tmp_path, monkeypatch):
    run = shutil.copytree(run, tmp_path / "run")  # publish_run writes into the run's publish/
    hub = FakeHub(monkeypatch)
    recipe = load_recipe(run / "recipe.yaml", ["train.push_to_hub=me/from-training"])
    published = publish_run(recipe, run, load_model(run / "checkpoints" / "epoch_2"))  # the model in memory
    [(_, _, _), (upload, repo, args)] = hub.calls
    assert (upload, repo) == ("upload_folder", "me/from-training")
    assert args["files"]["model.safetensors"] == (published.with_suffix("") / "model.safetensors").read_bytes()


def test_offline_or_without_token_is_refused_before_any_request(run, tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HfclsError, match=r"^cannot push: HF_HUB_OFFLINE is set; unset it \(or use --dry-run"):
        push(run / "latest", "me/tiny")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "no_hf_home"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_hf_home" / "token"))
    with pytest.raises(HfclsError, match="no Hugging Face token"):
        push(run / "latest", "me/tiny")
