"""hfcls-push: the dry run writes a folder transformers.pipeline loads, with a card of the
run's real metrics; the upload sends that folder to HfApi (network calls intercepted)."""

import pytest
from huggingface_hub import HfApi, constants
from PIL import Image
from transformers import pipeline

from conftest import make_image_folder, tiny_recipe_dict
from hfcls.errors import HfclsError
from hfcls.hub import cli, push
from hfcls.logs import read_jsonl
from hfcls.publish import publish_run
from hfcls.recipe import load_recipe, recipe_from_dict


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 2-epoch run of the tiny ResNet (evaluated after each epoch): its work dir."""
    from hfcls.engine import train

    root = tmp_path_factory.mktemp("push")
    train_dir = make_image_folder(root / "data" / "train", per_class=8, seed=0)
    val_dir = make_image_folder(root / "data" / "val", per_class=4, seed=1)
    train(recipe_from_dict(tiny_recipe_dict(train_dir, val_dir, train={"epochs": 2})), root / "run")
    return root / "run"


class FakeHub:
    """Stands in for the Hub's HTTP API: records what HfApi would send."""

    def __init__(self, monkeypatch):
        self.calls = []
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_TOKEN", "hf_test_token")
        monkeypatch.setattr(HfApi, "create_repo", self.create_repo)
        monkeypatch.setattr(HfApi, "create_branch", self.create_branch)
        monkeypatch.setattr(HfApi, "upload_folder", self.upload_folder)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", repo_id, kwargs))

    def upload_folder(self, repo_id, folder_path, **kwargs):
        files = {p.name: p.read_bytes() for p in folder_path.iterdir()}
        self.calls.append(("upload_folder", repo_id, {**kwargs, "files": files}))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()


def final_metrics(work_dir):
    return read_jsonl(work_dir / "metrics.jsonl")[-1]


def test_dry_run_folder_loads_in_pipeline_and_card_has_metrics(run, tmp_path, capsys):
    [published] = sorted((run / "publish").glob("*.safetensors"))
    out = tmp_path / "staged"
    cli([str(published.with_suffix("")), "me/tiny-colours", "--dry-run", "--out", str(out)])
    assert capsys.readouterr().out.startswith(f"dry run: wrote {out} (README.md, config.json, model.safetensors")

    card = (out / "README.md").read_text()
    row = final_metrics(run)
    assert row["epoch"] == 2
    assert "Validation set, epoch 2 (accuracies in %):" in card
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
    cli([str(run / "best"), "me/tiny", "--dry-run", "--out", str(tmp_path / "best")])
    rows = read_jsonl(run / "metrics.jsonl")
    best = max(rows, key=lambda row: row["val_accuracy_top1"])
    assert f"Validation set, epoch {best['epoch']} (" in (tmp_path / "best" / "README.md").read_text()


def test_upload_sends_the_staged_folder(run, tmp_path, monkeypatch, capsys):
    hub = FakeHub(monkeypatch)
    cli([str(run / "latest"), "me/tiny", "--private", "--revision", "v1", "--commit-message", "first"])
    assert capsys.readouterr().out.strip() == "https://huggingface.co/me/tiny/commit/abc"
    (create, name, create_args), (branch, _, branch_args), (upload, repo, upload_args) = hub.calls
    assert (create, name, create_args) == ("create_repo", "me/tiny",
                                          {"private": True, "exist_ok": True, "repo_type": "model"})
    assert (branch, branch_args) == ("create_branch", {"branch": "v1", "exist_ok": True})
    assert (upload, repo, upload_args["revision"], upload_args["commit_message"]) == \
        ("upload_folder", "me/tiny", "v1", "first")
    files = upload_args["files"]
    assert set(files) == {"README.md", "config.json", "model.safetensors", "preprocessor_config.json"}
    assert files["model.safetensors"] == (run / "latest" / "model.safetensors").read_bytes()
    assert b"| accuracy_top1 |" in files["README.md"]


def test_end_of_training_pushes_the_published_folder(run, monkeypatch):
    hub = FakeHub(monkeypatch)
    recipe = load_recipe(run / "recipe.yaml", ["train.push_to_hub=me/from-training"])
    published = publish_run(recipe, run, run / "checkpoints" / "epoch_2")
    [(_, _, _), (upload, repo, args)] = hub.calls
    assert (upload, repo) == ("upload_folder", "me/from-training")
    assert args["files"]["model.safetensors"] == (published.with_suffix("") / "model.safetensors").read_bytes()


def test_offline_or_without_token_is_one_clear_line(run, monkeypatch, capsys):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SystemExit) as exit_info:
        cli([str(run / "latest"), "me/tiny"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: cannot push: HF_HUB_OFFLINE is set; unset it " \
                                      "(or use --dry-run to write the folder only)\n"

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(run / "no_hf_home"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(run / "no_hf_home" / "token"))
    with pytest.raises(HfclsError, match="no Hugging Face token"):
        push(run / "latest", "me/tiny")
