"""SIGKILL at each phase of saving, pruning, exporting and publishing; `--resume-from auto` then ends
exactly where an uninterrupted run ends: bit-identical weights and files, one metrics.jsonl row per epoch.

The kill comes from inside the training process, at an exact file-system operation: an audit hook
(Python's own, `sys.addaudithook`) sees each open, rename and removal before it happens and sends
SIGKILL to its own process at the chosen one. No hfcls code is replaced.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, deterministic_rows, max_difference, tiny_recipe_dict, weights, write_recipe

from hfcls.api import train
from hfcls.artifacts.checkpoint import read_state
from hfcls.recipe import load_recipe

pytestmark = pytest.mark.slow

# argv: a JSON list of [audit event, regex over its first two arguments] stages, N, then hfcls-train's
# arguments. Each stage waits for the one before; the N-th match of the last stage is the kill.
KILL_AT = """
import json, os, re, signal, sys
stages, nth = json.loads(sys.argv[1]), int(sys.argv[2])
stage, seen = 0, 0
def kill_at(name, args):
    global stage, seen
    event, pattern = stages[stage]
    if name != event or not re.search(pattern, " ".join(map(str, args[:2]))):
        return
    if stage < len(stages) - 1:
        stage += 1
        return
    seen += 1
    if seen == nth:
        os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(kill_at)
from hfcls.cli.train import main
main(sys.argv[3:])
"""

# (phase, stages, which occurrence of the last stage)
KILL_POINTS = [
    ("save: files written, before the rename", [("os.rename", r"epoch_2\.tmp \S*epoch_2$")], 1),
    ("save: writing trainer_state.json", [("open", r"epoch_2\.tmp/trainer_state\.json w")], 1),
    ("save: writing scheduler.json", [("open", r"epoch_3\.tmp/scheduler\.json w")], 1),
    ("after the rename, before the epoch's row", [("open", r"metrics\.jsonl a")], 2),
    ("pruning: part of the old checkpoint deleted", [("shutil.rmtree", r"epoch_1\.old"), ("os.remove", r".")], 3),
    ("export: between the two renames of latest/", [("os.rename", r"/latest \S*/latest\.old$")], 1),
    ("export: linking the new best/ (epoch 3)", [("os.link", r"latest/config\.json \S*best\.tmp/config\.json")], 2),
    ("publish: the hashed file written, before its rename", [("os.rename", r"publish/\.\S*\.tmp\.safetensors ")], 1),
    ("publish: writing its Hugging Face folder", [("open", r"publish/\S*-[0-9a-f]{8}\.tmp/config\.json w")], 1),
]


def recipe_dict(tiny_data):
    # max_keep 1: each save prunes the one before; every epoch evaluated, exported and checkpointed.
    return tiny_recipe_dict(*tiny_data, train={"epochs": 3, "deterministic": True, "log_with": []},
                            checkpoint={"max_keep": 1}, schedule={"type": "cosine"})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from conftest import make_image_folder

    root = tmp_path_factory.mktemp("kill_points")
    data = (make_image_folder(root / "data" / "train", per_class=8, seed=0),
            make_image_folder(root / "data" / "val", per_class=4, seed=1))
    recipe = write_recipe(root / "r.yaml", recipe_dict(data))
    train(load_recipe(recipe), root / "straight")
    return recipe, root / "straight"


def leftovers(work):
    return sorted(str(p.relative_to(work)) for p in work.rglob("*") if re.search(r"\.(tmp|old)$|\.tmp\.", p.name))


def files_of(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("phase, stages, nth", KILL_POINTS, ids=[point[0] for point in KILL_POINTS])
def test_sigkill_then_resume_ends_as_an_uninterrupted_run(uninterrupted, tmp_path, phase, stages, nth):
    recipe, straight = uninterrupted
    work = tmp_path / straight.name  # the published files are named after the work dir
    killed = subprocess.run([sys.executable, "-c", KILL_AT, json.dumps(stages), str(nth), str(recipe),
                             "--work-dir", str(work)], env={**os.environ, "PYTHONPATH": str(REPO)},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, (phase, killed.returncode, killed.stderr[-3000:])

    train(load_recipe(work / "recipe.yaml"), work, resume_from="auto")

    resumed_from = re.search(r"resumed from (\S+) at epoch", (work / "log.txt").read_text()).group(1)
    assert re.search(r"/checkpoints/epoch_\d$", resumed_from), resumed_from
    assert max_difference(weights(straight, "epoch_3"), weights(work, "epoch_3")) == 0
    assert [row["epoch"] for row in deterministic_rows(work)] == [1, 2, 3]
    assert deterministic_rows(work) == deterministic_rows(straight)
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["epoch_3"]
    assert read_state(work / "checkpoints" / "epoch_3").epoch == 3
    for export in ("latest", "best"):
        assert files_of(work / export) == files_of(straight / export), export
    [published] = [p.name for p in (straight / "publish").iterdir() if p.is_dir()]
    assert sorted(p.name for p in (work / "publish").iterdir()) == [published, published + ".safetensors"]
    assert files_of(work / "publish") == files_of(straight / "publish")
    assert files_of(work / "publish" / published) == files_of(straight / "publish" / published)
    assert leftovers(work) == []
