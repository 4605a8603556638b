"""Every console script, run as a user runs it: a real subprocess, its exit status, what it printed or wrote.

0 on success, 2 with one line naming the problem on a user error, never a traceback.
"""

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, make_image_folder, tiny_recipe_dict, write_recipe

BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1"}
COVERED = set()  # the scripts these tests ran


def run(script: str, *args, cwd=None) -> subprocess.CompletedProcess:
    COVERED.add(script)
    command = [str(BIN / script), *map(str, args)] if script.startswith("hfcls-") else [sys.executable, "-m", script,
                                                                                       *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600)


def ok(result) -> str:
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def user_error(result, *words) -> str:
    """Exit 2, no traceback, one `error:` line naming every word."""
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(folder, recipe, work dir) of a 2-epoch EMA run that hfcls-train itself made."""
    root = tmp_path_factory.mktemp("cli")
    train_dir = make_image_folder(root / "data" / "train", per_class=8, seed=0)
    val_dir = make_image_folder(root / "data" / "val", per_class=4, seed=1)
    recipe = write_recipe(root / "tiny.yaml", tiny_recipe_dict(
        train_dir, val_dir, train={"epochs": 2, "log_interval": 2, "ema": {"decay": 0.9}}))
    out = ok(run("hfcls-train", recipe, "--work-dir", root / "work", "train.log_with=[]"))
    assert "epoch 2:" in out
    return root, recipe, root / "work"


def test_every_console_script_is_run_here():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    scripts = {line.split("=")[0].strip() for line in config["options.entry_points"]["console_scripts"].splitlines()
               if line.strip()}
    tested = {name.removeprefix("test_").replace("_", "-") for name in globals() if name.startswith("test_hfcls_")}
    assert scripts == tested


def test_hfcls_train(trained, tmp_path):
    root, recipe, work = trained
    assert (work / "best" / "config.json").is_file() and list((work / "publish").glob("*.safetensors"))
    user_error(run("hfcls-train", tmp_path / "missing.yaml"), "missing.yaml", "does not exist")
    user_error(run("hfcls-train", recipe, "optim.lrr=0.1"), "optim.lrr", "did you mean")
    # A second run into the same work dir is refused, and nothing of the first is touched.
    before = sorted(p.name for p in (work / "checkpoints").iterdir())
    user_error(run("hfcls-train", recipe, "--work-dir", work), "--resume-from auto")
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == before


def test_hfcls_prepare(tmp_path):
    assert "wrote digits" in ok(run("hfcls-prepare", "digits", tmp_path / "digits"))
    assert len(list((tmp_path / "digits" / "val").glob("*/*.png"))) == 360
    user_error(run("hfcls-prepare", "digits", tmp_path / "digits"), "already has files")
    # shrink: a recipe's splits as parquet shards of smaller images, read back by a disk source.
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(make_image_folder(tmp_path / "train", per_class=4),
                                                                make_image_folder(tmp_path / "val", per_class=2)))
    out = ok(run("hfcls-prepare", "shrink", recipe, tmp_path / "small", "data.val=null", "--short-side", "8",
                 "--workers", "2", "--rows-per-shard", "5"))
    assert "wrote train: 12 images, shorter side at most 8, in 3 parquet shard(s)" in out
    assert f"data.train={{type: disk, path: {tmp_path / 'small'}/train}}" in out and "wrote val" not in out
    assert len(list((tmp_path / "small" / "train").glob("train-0000?-of-00003.parquet"))) == 3
    ok(run("hfcls-verify", recipe, f"data.train={{type: disk, path: {tmp_path / 'small' / 'train'}}}"))
    user_error(run("hfcls-prepare", "shrink", recipe, tmp_path / "x", "--short-side", "0"), "--short-side",
               "at least 1")
    user_error(run("hfcls-prepare", "shrink", recipe, tmp_path / "small"), "small/train already has files")


def test_hfcls_verify(trained):
    root, recipe, _ = trained
    assert "all 36 images" in ok(run("hfcls-verify", recipe))
    user_error(run("hfcls-verify", recipe, "data.batch_size=0"), "data.batch_size")


def test_hfcls_browse(trained, tmp_path):
    root, recipe, _ = trained
    assert "saved 4 val samples" in ok(run("hfcls-browse", recipe, "--split", "val", "--n", "4",
                                           "--out", tmp_path / "grid.png"))
    assert (tmp_path / "grid.png").stat().st_size > 1000
    user_error(run("hfcls-browse", recipe, "--n", "0"), "--n")


def test_hfcls_flops(trained):
    root, recipe, _ = trained
    out = ok(run("hfcls-flops", recipe, "--num-classes", "3"))
    assert "Input shape: (3, 16, 16)" in out and "Params:" in out
    user_error(run("hfcls-flops", root / "nope.yaml"), "nope.yaml")


def test_hfcls_publish(trained, tmp_path):
    root, recipe, work = trained
    out = ok(run("hfcls-publish", work / "checkpoints" / "epoch_2", tmp_path / "release" / "tiny"))
    published = Path(out.strip().splitlines()[-1])
    assert published.is_file() and published.name.startswith("tiny-")
    user_error(run("hfcls-publish", work / "checkpoints" / "epoch_9", tmp_path / "x"), "epoch_9", "does not exist")


def test_hfcls_push(trained, tmp_path):
    root, recipe, work = trained
    out = ok(run("hfcls-push", work / "best", "me/tiny", "--dry-run", "--out", tmp_path / "staged"))
    assert "would upload" in out and (tmp_path / "staged" / "README.md").is_file()
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    user_error(run("hfcls-push", work / "best", "me/tiny", "--dry-run", "--out", keep), "not an empty folder")
    assert (keep / "notes.txt").read_text() == "mine"


def test_hfcls_eval(trained, tmp_path):
    root, recipe, work = trained
    out = ok(run("hfcls-eval", recipe, work / "checkpoints" / "epoch_2", "--metrics", "accuracy",
                 "--out", tmp_path / "r.json"))
    assert "accuracy_top1" in out and json.loads((tmp_path / "r.json").read_text())["predictions"]
    user_error(run("hfcls-eval", recipe, work / "best"), "nothing to report")
    user_error(run("hfcls-eval", recipe, work / "best", "--metrics", "acuracy"), "acuracy", "did you mean")


def test_hfcls_demo(trained, tmp_path):
    root, recipe, work = trained
    lone = tmp_path / "elsewhere" / next((work / "publish").glob("*.safetensors")).name
    lone.parent.mkdir()
    shutil.copy(next((work / "publish").glob("*.safetensors")), lone)  # no work dir, no recipe beside it
    out = ok(run("hfcls-demo", root / "data" / "val" / "cat" / "0.png", lone, "--topk", "2"))
    assert out.splitlines()[1].strip().startswith("1. ")
    user_error(run("hfcls-demo", root / "data" / "val" / "cat" / "0.png", lone, "--topk", "0"), "--topk")


def test_hfcls_plot(trained, tmp_path):
    root, recipe, work = trained
    ok(run("hfcls-plot", work, "--out", tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 1000
    user_error(run("hfcls-plot", tmp_path / "no_run"), "metrics.jsonl")


def test_hfcls_bench(trained, tmp_path):
    root, recipe, _ = trained
    out = ok(run("hfcls-bench", recipe, "--steps", "2", "--warmup", "0", "--rounds", "1", "--baseline",
                 "--json", tmp_path / "b.json"))
    assert "ratio hfcls loader, fp32 NCHW / baseline" in out
    assert len(json.loads((tmp_path / "b.json").read_text())["results"]) == 2
    user_error(run("hfcls-bench", recipe, "data.val=null", "--what", "eval"), "data.val")
    # Decoding on the device, against the compute-only ceiling: the report GPU runs give (benchmarks/run_gpu.sh).
    out = ok(run("hfcls-bench", recipe, "data.decode=cpu", "--what", "eval", "--synthetic", "--steps", "2",
                 "--warmup", "0", "--rounds", "1"))
    assert "data wait" in out and "real / synthetic hfcls decode cpu, fp32 NCHW: " in out
    if not torch.cuda.is_available():
        user_error(run("hfcls-bench", recipe, "data.decode=cuda"), "data.decode=cuda", "data.decode=cpu")


def test_launch_helpers_module():
    root = REPO / "recipes" / "digits" / "resnet-tiny_1xb64_digits.yaml"
    assert ok(run("hfcls.cli.dist", "port", root)).strip() == "29500"
    user_error(run("hfcls.cli.dist", "check-port", "abc"), "port", "1 to 65535")
