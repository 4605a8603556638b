"""A LoRA run (model.lora on a tiny ViT, with an EMA): only the adapters and the head move, checkpoints hold
them with adapter_config.json, resume is exact, and every export is the plain merged model, which
transformers.pipeline loads in a process where peft cannot be imported and which scores as the run evaluated."""

import json
import math
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from hfcls import pipeline
from hfcls.api import train
from hfcls.artifacts.publish import publish
from hfcls.artifacts.weights import load_state_dict
from hfcls.logs import read_jsonl
from hfcls.modeling.lora import ADAPTER_CONFIG
from hfcls.recipe import load_recipe

from conftest import deterministic_rows, max_difference, weights

pytestmark = pytest.mark.xdist_group("lora_run")  # its run (conftest.lora_run) is trained once, shared


def test_only_the_adapters_and_the_head_move(lora_run):
    _, work = lora_run
    first, last = weights(work, "epoch_1"), weights(work, "epoch_2")
    trained = [key for key in first if ".lora_" in key or ".modules_to_save." in key]
    assert len(trained) == 2 * 2 + 2  # A and B of q_proj and v_proj, the head's weight and bias
    assert all(not torch.equal(first[key], last[key]) for key in trained)
    assert all(torch.equal(first[key], last[key]) for key in first if key not in trained)
    adapters = sum(first[key].numel() for key in trained if ".lora_" in key)
    head = sum(first[key].numel() for key in trained) - adapters
    model = sum(tensor.numel() for tensor in load_file(work / "latest" / "model.safetensors").values())
    assert (
        f"{adapters + head} parameters trained ({adapters} in the adapters, {head} in the head classifier)"
        in (work / "log.txt").read_text()
    )
    assert f"of the model's {model:,}" in (work / "log.txt").read_text()


def test_checkpoints_hold_the_lora_model_and_read_as_the_merged_one(lora_run):
    _, work = lora_run
    checkpoint = work / "checkpoints" / "epoch_2"
    assert json.loads((checkpoint / ADAPTER_CONFIG).read_text())["modules_to_save"] == ["classifier"]
    assert json.loads((checkpoint / "config.json").read_text())["architectures"] == ["ViTForImageClassification"]
    # latest/ holds the EMA the run evaluated last, merged; the reader merges the checkpoint's alike.
    latest = pipeline(work / "latest").model.state_dict()
    assert max_difference(load_state_dict(checkpoint), latest) == 0
    assert max_difference(load_state_dict(checkpoint, use_ema=False), latest) > 0


def test_publishing_the_checkpoint_gives_the_runs_published_file(lora_run, tmp_path):
    _, work = lora_run
    [published] = (work / "publish").glob("*.safetensors")
    again = publish(work / "checkpoints" / "epoch_2", tmp_path / work.name)
    assert again.name == published.name and again.read_bytes() == published.read_bytes()


def test_resume_is_exact(lora_run, tmp_path):
    recipe, work = lora_run
    resumed = tmp_path / "resumed"
    shutil.copytree(work / "checkpoints" / "epoch_1", resumed / "checkpoints" / "epoch_1")
    (resumed / "metrics.jsonl").write_text((work / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    train(load_recipe(recipe), resumed, resume_from="auto")
    assert max_difference(weights(work, "epoch_2"), weights(resumed, "epoch_2")) == 0
    ema = [load_file(w / "checkpoints" / "epoch_2" / "ema.safetensors") for w in (work, resumed)]
    assert max_difference(*ema) == 0
    assert deterministic_rows(resumed) == deterministic_rows(work)


TRANSFORMERS_ONLY = """
import json, sys
sys.modules["peft"] = None  # `import peft` fails: as on a machine without it
from transformers import pipeline
classify = pipeline("image-classification", model=sys.argv[1], device="cpu")
print(json.dumps(classify(sys.argv[2:], top_k=3)))
"""


def test_exports_score_in_transformers_without_peft_as_the_run_evaluated(lora_run):
    _, work = lora_run
    files = sorted(str(p) for p in (work.parent / "data" / "val").rglob("*.png"))
    done = subprocess.run(
        [sys.executable, "-c", TRANSFORMERS_ONLY, str(work / "latest"), *files], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.splitlines()[-1])
    theirs = torch.tensor(
        [[dict((a["label"], a["score"]) for a in answer)[c] for c in ("cat", "dog", "fox")] for answer in answers]
    )
    ours = pipeline(work / "checkpoints" / "epoch_2").scores(files)[0]
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)
    # The loss validation logged at epoch 2 came from the LoRA model itself, unmerged.
    truth = [("cat", "dog", "fox").index(f.split("/")[-2]) for f in files]
    loss = -sum(math.log(theirs[i, label]) for i, label in enumerate(truth)) / len(files)
    assert loss == pytest.approx(read_jsonl(work / "metrics.jsonl")[-1]["val_loss"], abs=1e-5)
