"""The model card the Hub reads (huggingface_hub's own parsers read its metadata and model-index back), and
hfcls's own architectures loading with transformers alone in a process that cannot import hfcls."""

import json
import os
import subprocess
import sys

import pytest
import torch
from huggingface_hub import ModelCard, metadata_load
from huggingface_hub.repocard_data import model_index_to_eval_results
from PIL import Image
from transformers import AutoConfig, AutoModelForImageClassification

from hfcls.artifacts.export import image_processor, save_hf_folder
from hfcls.artifacts.hub import base_model_id, card_data, stage
from hfcls.labels import label_maps
from hfcls.recipe import recipe_from_dict
from hfcls.recipe.schema import DataSection


def test_model_index_holds_the_validation_accuracies_as_fractions(cifar_resnet_run, tmp_path):
    from hfcls.logs import read_jsonl

    staged = stage(cifar_resnet_run / "best", "me/tiny", tmp_path / "staged")
    card = ModelCard.load(staged / "README.md")
    rows = [r for r in read_jsonl(cifar_resnet_run / "metrics.jsonl") if "val_accuracy_top1" in r]
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert results == {
        "top-1 accuracy": pytest.approx(rows[-1]["val_accuracy_top1"] / 100),
        "top-2 accuracy": pytest.approx(rows[-1]["val_accuracy_top2"] / 100),
    }
    assert card.data.eval_results[0].task_type == "image-classification"
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "image-classification"
    assert "trust_remote_code=True" in card.text and "cifar_resnet.py" in card.text


def test_a_multi_label_card_carries_every_metric_the_run_evaluated(multilabel_run, tmp_path):
    from hfcls.logs import read_jsonl

    recipe, work = multilabel_run
    staged = stage(work / "latest", "me/colours", tmp_path / "staged")
    metadata = metadata_load(staged / "README.md")  # the front matter as the Hub reads it
    model_name, results = model_index_to_eval_results(metadata["model-index"])
    row = read_jsonl(work / "metrics.jsonl")[-1]  # latest/ holds the last evaluation's weights
    assert model_name == "colours"
    assert {r.metric_name: r.metric_value for r in results} == {
        "mAP": pytest.approx(row["val_mAP"] / 100),
        "CP (per-class precision)": pytest.approx(row["val_CP"] / 100),
        "CR (per-class recall)": pytest.approx(row["val_CR"] / 100),
        "CF1 (per-class F1)": pytest.approx(row["val_CF1"] / 100),
        "OP (overall precision)": pytest.approx(row["val_OP"] / 100),
        "OR (overall recall)": pytest.approx(row["val_OR"] / 100),
        "OF1 (overall F1)": pytest.approx(row["val_OF1"] / 100),
    }
    assert {r.metric_type for r in results} == {"mAP", "precision", "recall", "f1"}
    first = results[0]
    assert (first.task_type, first.task_name) == ("image-classification", "Multi-label Image Classification")
    assert (first.dataset_type, first.dataset_name, first.dataset_split) == ("imagefolder", "val", "validation")
    assert metadata["pipeline_tag"] == "image-classification" and metadata["library_name"] == "transformers"
    assert {"hfcls", "image-classification", "resnet", "multi-label"} == set(metadata["tags"])
    [widget] = metadata["widget"]
    assert widget["src"] == "https://huggingface.co/me/colours/resolve/main/example.png"
    with Image.open(staged / "example.png") as example:  # the first validation image, beside the model
        assert example.size == (15, 15)
    assert ModelCard.load(staged / "README.md").data.eval_results == results


def test_single_label_results_name_each_evaluated_metric_and_skip_the_rest():
    metrics = {
        "epoch": 4,
        "loss": 0.31,
        "accuracy_top1": 91.25,
        "accuracy_top5": 99.5,
        "precision": 90.0,
        "recall": 89.5,
        "f1_score": 89.75,
        "precision_micro": 91.25,
        "f1_score_thr-0.30": 88.0,
        "support": 360,
        "recall_classwise": [90.0, 89.0],
    }
    data = card_data("me/digits", None, metrics, {"model_type": "resnet"})
    assert {r.metric_name: (r.metric_type, r.metric_value) for r in data.eval_results} == {
        "top-1 accuracy": ("accuracy", 0.9125),
        "top-5 accuracy": ("accuracy", 0.995),
        "precision (macro)": ("precision", 0.9),
        "recall (macro)": ("recall", 0.895),
        "F1 (macro)": ("f1", 0.8975),
        "precision (micro)": ("precision", 0.9125),
        "F1 (macro, threshold 0.30)": ("f1", 0.88),
    }
    assert data.eval_results[0].task_name == "Image Classification" and data.tags == [
        "hfcls",
        "image-classification",
        "resnet",
    ]


def test_base_model_names_the_hub_model_a_fine_tune_started_from(tmp_path):
    assert base_model_id("microsoft/resnet-50") == "microsoft/resnet-50"
    cached = tmp_path / "hub" / "models--timm--resnet18.a1_in1k" / "snapshots" / "0123abc"
    cached.mkdir(parents=True)
    assert base_model_id(str(cached)) == "timm/resnet18.a1_in1k"  # a folder of the Hub's cache
    assert base_model_id(str(tmp_path)) is None and base_model_id(None) is None  # weights of one's own


def test_base_model_datasets_and_license_come_from_the_recipe():
    recipe = recipe_from_dict(
        {
            "data": {
                "train": {"type": "hub", "name": "ylecun/mnist", "split": "train"},
                "val": {"type": "hub", "name": "ylecun/mnist", "split": "test"},
            },
            "model": {"pretrained": "microsoft/resnet-50"},
            "train": {"license": "apache-2.0"},
        }
    )
    data = card_data("me/m", recipe, {"epoch": 3, "accuracy_top1": 91.25, "loss": 0.3})
    assert (data.base_model, data.datasets, data.license) == ("microsoft/resnet-50", ["ylecun/mnist"], "apache-2.0")
    [result] = data.eval_results
    assert (result.dataset_type, result.metric_value, result.metric_type) == ("ylecun/mnist", 0.9125, "accuracy")


WITHOUT_HFCLS = """
import importlib.abc, json, sys
class NoHfcls(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "hfcls":
            raise ModuleNotFoundError("hfcls is not installed here")
sys.meta_path.insert(0, NoHfcls())
try:
    import hfcls
    raise SystemExit("hfcls is importable")
except ModuleNotFoundError:
    pass
import torch
from transformers import AutoModelForImageClassification, pipeline
folder, inputs = sys.argv[1], torch.load(sys.argv[2])
model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
with torch.no_grad():
    logits = model(pixel_values=inputs).logits
top = pipeline("image-classification", model=folder, trust_remote_code=True)(sys.argv[3], top_k=1)[0]
print(json.dumps({"class": type(model).__module__, "logits": logits.tolist(), "top": top["label"]}))
"""


def load_without_hfcls(folder, inputs, image, tmp_path) -> dict:
    torch.save(inputs, tmp_path / "inputs.pt")
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_HFCLS, str(folder), str(tmp_path / "inputs.pt"), str(image)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_pushed_cifar_resnet_loads_with_transformers_alone(cifar_resnet_run, tmp_path):
    import hfcls

    staged = stage(cifar_resnet_run / "best", "me/tiny", tmp_path / "staged")
    image = next((cifar_resnet_run.parent / "data" / "val" / "dog").glob("*.png"))
    inputs = torch.randn(2, 3, 16, 16)
    from hfcls.artifacts.loading import load_model

    with torch.no_grad():
        expected = load_model(cifar_resnet_run / "best")(pixel_values=inputs).logits
    alone = load_without_hfcls(staged, inputs, image, tmp_path)
    assert alone["class"].startswith("transformers_modules") and "hfcls" not in alone["class"]
    assert torch.allclose(torch.tensor(alone["logits"]), expected, atol=1e-5)
    assert alone["top"] == hfcls.pipeline(cifar_resnet_run / "best", device="cpu")(str(image), top_k=1)[0]["label"]


def test_saved_lenet5_loads_with_transformers_alone(tmp_path, tiny_data):
    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(
        AutoConfig.for_model("lenet5", num_channels=3, **label_maps(["cat", "dog", "fox"]))
    ).eval()
    data = DataSection(eval_pipeline=[{"type": "Resize", "size": 32}])
    save_hf_folder(model, image_processor(data), tmp_path / "lenet")
    assert (
        json.loads((tmp_path / "lenet" / "config.json").read_text())["auto_map"]["AutoConfig"] == "lenet.LeNet5Config"
    )
    inputs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(pixel_values=inputs).logits
    alone = load_without_hfcls(tmp_path / "lenet", inputs, next((tiny_data[1] / "cat").glob("*.png")), tmp_path)
    assert torch.allclose(torch.tensor(alone["logits"]), expected, atol=1e-6)
