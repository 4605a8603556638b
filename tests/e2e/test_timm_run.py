"""A timm model through every command, as a native one: fine-tuned from a folder in timm's Hub layout
(timm.models.save_for_hf) with the fine-tuning recipe's knobs (LAMB, layer decay, drop path, a frozen
patch embedding, EMA), resumed exactly, trained multi-label; then hfcls-eval (features and TTA),
hfcls-demo, hfcls.pipeline, hfcls-cam at its default layer, hfcls-export with its ONNX check,
hfcls-publish and hfcls-push --dry-run, each checked against an independent reader where one exists."""

import json
import shutil

import numpy as np
import pytest
import torch
import transformers

import hfcls
from hfcls.api import train
from hfcls.evaluation.results import read_results
from hfcls.recipe import recipe_from_dict

from commands import ok
from conftest import (
    deterministic_rows,
    make_digit_folder,
    make_multilabel_folder,
    max_difference,
    shared_once,
    tiny_recipe_dict,
    weights,
    write_recipe,
)
from families import timm_folder

pytestmark = pytest.mark.xdist_group("timm_run")

ARCH = "vit_tiny_patch16_224"  # 32 px patches of 8: tokens, a [CLS] token, a group_matcher, checkpointing
PIPELINES = {
    "train_pipeline": [
        {"type": "RandomResizedCrop", "size": 32, "scale": [0.5, 1.0]},
        {"type": "RandomHorizontalFlip"},
    ],
    "eval_pipeline": [{"type": "Resize", "size": 40}, {"type": "CenterCrop", "size": 32}],
}


def timm_recipe(source, train_dir, val_dir, **train_section) -> dict:
    recipe = tiny_recipe_dict(
        train_dir,
        val_dir,
        data=PIPELINES,
        model={"pretrained": str(source), "config_overrides": {"drop_path_rate": 0.1}},
        optim={"type": "lamb", "lr": 0.01, "layer_decay": 0.65, "frozen": ["timm_model.patch_embed."]},
        schedule={"type": "cosine"},
        train={"epochs": 2, "deterministic": True, "ema": {"decay": 0.9}, **train_section},
    )
    del recipe["model"]["config"]
    return recipe


@pytest.fixture(scope="module")
def timm_run(tmp_path_factory):
    """{"recipe", "work", "stopped", "multilabel", "val"}: a finished two-epoch fine-tune, the same run
    resumed from its first epoch's checkpoint, and a multi-label fine-tune of the same model."""

    def build(root):
        source = timm_folder(root / "pretrained", ARCH, num_classes=7)
        train_dir = make_digit_folder(root / "data" / "train", per_class=8)
        val_dir = make_digit_folder(root / "data" / "val", per_class=4, offset=20)
        recipe = write_recipe(root / "timm.yaml", timm_recipe(source, train_dir, val_dir, publish=True))
        from hfcls.recipe import load_recipe

        train(load_recipe(recipe), root / "work")
        stopped = root / "stopped"  # the run as a kill after epoch 1 left it
        shutil.copytree(root / "work" / "checkpoints" / "epoch_1", stopped / "checkpoints" / "epoch_1")
        (stopped / "metrics.jsonl").write_text((root / "work" / "metrics.jsonl").read_text().splitlines()[0] + "\n")
        train(load_recipe(recipe), stopped, resume_from="auto")
        make_multilabel_folder(root / "ml" / "train", count=24, seed=0)
        make_multilabel_folder(root / "ml" / "val", count=12, seed=1)
        multilabel = timm_recipe(source, root / "ml" / "train", root / "ml" / "val", epochs=1, ema=None)
        train(recipe_from_dict(multilabel), root / "multilabel")

    root = shared_once(tmp_path_factory, "timm_run", build)
    names = ("recipe", "work", "stopped", "multilabel", "val")
    return dict(
        zip(names, (root / "timm.yaml", root / "work", root / "stopped", root / "multilabel", root / "data" / "val"))
    )


def val_files(run) -> list:
    return sorted(str(p) for p in run["val"].rglob("*.png"))


def test_a_timm_model_fine_tunes_with_the_recipe_knobs(timm_run):
    work = timm_run["work"]
    config = json.loads((work / "best" / "config.json").read_text())
    assert config["model_type"] == "timm_wrapper" and config["architecture"] == ARCH
    assert config["model_args"]["drop_path_rate"] == 0.1 and "num_classes" not in config["model_args"]
    assert config["label_names"] == ["one", "seven", "zero"]
    rows = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    tuned = weights(work, "epoch_2")
    source = _safetensors(work.parent / "pretrained" / "model.safetensors")  # timm's own names, no prefix
    assert tuned["timm_model.head.weight"].shape == (3, 16) and source["head.weight"].shape == (7, 16)
    assert torch.equal(tuned["timm_model.patch_embed.proj.weight"], source["patch_embed.proj.weight"])  # frozen
    assert not torch.equal(tuned["timm_model.blocks.0.attn.qkv.weight"], source["blocks.0.attn.qkv.weight"])


def _safetensors(path):
    from safetensors.torch import load_file

    return load_file(path)


def test_a_timm_run_resumes_exactly_ema_included(timm_run):
    work, stopped = timm_run["work"], timm_run["stopped"]
    assert max_difference(weights(work, "epoch_2"), weights(stopped, "epoch_2")) == 0
    ema, ema_again = (_safetensors(w / "checkpoints" / "epoch_2" / "ema.safetensors") for w in (work, stopped))
    assert max_difference(ema, ema_again) == 0 and max_difference(ema, weights(work, "epoch_2")) > 0
    assert deterministic_rows(stopped) == deterministic_rows(work)


def test_eval_features_and_tta(timm_run, command, tmp_path):
    recipe, work = timm_run["recipe"], timm_run["work"]
    out = tmp_path / "features.json"
    ok(command("hfcls-eval", recipe, work / "best", "--out", out, "--out-items", "pred", "features"))
    records = read_results(out)["predictions"]
    features = torch.tensor([r["features"] for r in records])
    assert features.shape == (12, 16)  # the [CLS] token's pre-logits: embed_dim 16
    # transformers' own feature extraction of the exported folder (TimmWrapperModel's pooled output)
    extractor = transformers.pipeline("image-feature-extraction", model=str(work / "best"), device="cpu")
    files = [r["image"] for r in records[:3]]
    theirs = torch.tensor(np.array([np.ravel(extractor(f, pool=True)) for f in files]), dtype=torch.float32)
    assert torch.allclose(features[:3], theirs, atol=1e-4)
    printed = ok(command("hfcls-eval", recipe, work / "best", "--metrics", "accuracy", "--tta", "flip"))
    assert "accuracy_top1" in printed


def test_demo_pipeline_and_transformers_pipeline_agree(timm_run, command):
    work = timm_run["work"]
    files = val_files(timm_run)
    ours = hfcls.pipeline(work / "best", device="cpu")(files, top_k=3)
    theirs = transformers.pipeline("image-classification", model=str(work / "best"), device="cpu")(files, top_k=3)
    for mine, hf in zip(ours, theirs):
        assert [p["label"] for p in mine] == [p["label"] for p in hf]
        assert [p["score"] for p in mine] == pytest.approx([p["score"] for p in hf], abs=1e-4)
    printed = ok(command("hfcls-demo", files[0], work / "best", "--topk", "2"))
    assert f"1. {ours[0][0]['label']}" in printed and f"{ours[0][0]['score']:.4f}" in printed


def test_cam_at_the_default_layer(timm_run, command, tmp_path):
    printed = ok(command("hfcls-cam", val_files(timm_run)[0], timm_run["work"] / "best", "--out", tmp_path / "cam.png"))
    assert "at timm_model.blocks.1" in printed  # the last entry of its feature_info: [CLS] dropped, 4 x 4 patches
    assert (tmp_path / "cam.png").stat().st_size > 1000


def test_export_onnx_with_its_check(timm_run, command, tmp_path):
    printed = ok(command("hfcls-export", timm_run["work"] / "best", tmp_path / "vit.onnx", "--limit", "12"))
    assert "top-1 agreement 100.00%" in printed
    graph = hfcls.pipeline(tmp_path / "vit.onnx", device="cpu")(val_files(timm_run)[:2])
    eager = hfcls.pipeline(timm_run["work"] / "best", device="cpu")(val_files(timm_run)[:2])
    assert [p[0]["label"] for p in graph] == [p[0]["label"] for p in eager]


def test_publish_and_push_dry_run(timm_run, command, tmp_path):
    work = timm_run["work"]
    ok(command("hfcls-publish", work / "best", tmp_path / "release" / "vit"))
    published = next((tmp_path / "release").glob("vit-*.safetensors"))
    files = val_files(timm_run)[:3]
    from_file = hfcls.pipeline(published, device="cpu")(files)
    from_folder = transformers.pipeline("image-classification", model=str(published.with_suffix("")))(files)
    assert [p[0]["label"] for p in from_file] == [p[0]["label"] for p in from_folder]
    assert [p[0]["score"] for p in from_file] == pytest.approx([p[0]["score"] for p in from_folder], abs=1e-4)
    staged = tmp_path / "staged"
    ok(command("hfcls-push", work / "best", "me/vit-colours", "--dry-run", "--out", staged))
    card = (staged / "README.md").read_text()
    assert "`timm_wrapper`, 3 classes" in card and "`one`, `seven`, `zero`" in card and "top-1 accuracy" in card
    pushed = transformers.pipeline("image-classification", model=str(staged), device="cpu")(files)
    assert [p[0]["label"] for p in pushed] == [p[0]["label"] for p in from_folder]


def test_a_multilabel_timm_model_scores_with_sigmoids(timm_run):
    work = timm_run["multilabel"]
    config = json.loads((work / "best" / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    files = sorted(str(p) for p in (work.parent / "ml" / "val" / "images").glob("*.png"))[:4]
    scores, _ = hfcls.pipeline(work / "best", device="cpu").scores(files)
    theirs = transformers.pipeline("image-classification", model=str(work / "best"), device="cpu")(files, top_k=3)
    names = config["label_names"]
    for row, hf in zip(scores, theirs):
        by_label = {p["label"]: p["score"] for p in hf}
        assert row.tolist() == pytest.approx([by_label[name] for name in names], abs=1e-4)
        assert float(row.sum()) != pytest.approx(1.0, abs=1e-3)  # sigmoids, not a softmax
