"""A kill at each phase of saving, pruning, exporting and publishing; `--resume-from auto` then ends
exactly where an uninterrupted run ends: bit-identical weights and files, one metrics.jsonl row per epoch.

Three phases are killed with a real SIGKILL, in a child process (tests/kills.py); the other windows,
those inside hfcls.files' publish_folder, publish_links and write_atomic among them, with a kill
simulated in this process, which leaves the disk as SIGKILL does without starting an interpreter.
"""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hfcls.api import train
from hfcls.artifacts.checkpoint import read_state
from hfcls.recipe import load_recipe

from conftest import REPO, deterministic_rows, max_difference, tiny_recipe_dict, weights, write_recipe
from kills import SIGKILL_AT, Killed, killed_at

pytestmark = pytest.mark.xdist_group("kill_points")  # one worker builds the module's fixture, once

# (phase, stages, which occurrence of the last stage): kills.py says what a stage is.
SIGKILL_POINTS = [
    ("save: writing hfcls_state.json", [("open", r"epoch_2\.tmp/hfcls_state\.json w")], 1),
    ("pruning: part of the old checkpoint deleted", [("shutil.rmtree", r"epoch_1\.old"), ("os.remove", r".")], 3),
    ("publish: writing its Hugging Face folder", [("open", r"publish/\S*-[0-9a-f]{8}\.tmp/config\.json w")], 1),
]

# (phase, the kills: one per run, each resumed by the next, the last resume running to the end;
#  the temporary and old files the last kill leaves). The hook fires before the operation it sees.
SIMULATED_KILLS = [
    (
        "save: files written, before the rename (publish_folder)",
        [([("os.rename", r"epoch_2\.tmp \S*epoch_2$")], 1)],
        ["checkpoints/epoch_2.tmp"],
    ),
    ("save: writing scheduler.json", [([("open", r"epoch_3\.tmp/scheduler\.json w")], 1)], ["checkpoints/epoch_3.tmp"]),
    ("after the rename, before the epoch's row", [([("open", r"metrics\.jsonl None")], 2)], []),
    (
        "export: the new latest/ written, the old one not yet renamed (publish_folder)",
        [([("os.rename", r"/latest \S*/latest\.old$")], 1)],
        ["latest.tmp"],
    ),
    (
        "export: between the two renames of latest/ (publish_folder)",
        [([("os.rename", r"/latest\.tmp \S*/latest$")], 2)],
        ["latest.old", "latest.tmp"],
    ),
    (
        "export: the new latest/ in place, the old one not yet removed (publish_folder)",
        [([("os.rename", r"/latest \S*/latest\.old$"), ("shutil.rmtree", r"/latest\.old\b")], 1)],
        ["latest.old"],
    ),
    (
        "export: linking the new best/ (epoch 3, publish_links)",
        [([("os.link", r"latest/config\.json \S*best\.tmp/config\.json")], 2)],
        ["best.tmp"],
    ),
    (
        "publish: the hashed file written, before its rename",
        [([("os.rename", r"publish/\.\S*\.tmp\.safetensors ")], 1)],
        ["publish/.straight.tmp.safetensors"],
    ),
    (
        "resume: metrics.jsonl rewritten, before its replace (write_atomic)",
        [([("open", r"metrics\.jsonl None")], 2), ([("os.rename", r"\.metrics\.jsonl\.tmp \S*metrics\.jsonl$")], 1)],
        [".metrics.jsonl.tmp"],
    ),
    (
        "resume: recipe.yaml written, before its replace (write_atomic)",
        [
            ([("os.rename", r"epoch_2\.tmp \S*epoch_2$")], 1),
            ([("os.rename", r"\.recipe\.yaml\.tmp \S*recipe\.yaml$")], 1),
        ],
        [".recipe.yaml.tmp", "checkpoints/epoch_2.tmp"],
    ),
]


def recipe_dict(tiny_data):
    # max_keep 1: each save prunes the one before; every epoch evaluated, exported, checkpointed and published.
    return tiny_recipe_dict(
        *tiny_data,
        train={"epochs": 3, "deterministic": True, "publish": True},
        checkpoint={"max_keep": 1},
        schedule={"type": "cosine"},
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from conftest import make_tiny_data

    root = tmp_path_factory.mktemp("kill_points")
    data = make_tiny_data(root)
    recipe = write_recipe(root / "r.yaml", recipe_dict(data))
    train(load_recipe(recipe), root / "straight")
    return recipe, root / "straight"


def leftovers(work):
    return sorted(str(p.relative_to(work)) for p in work.rglob("*") if re.search(r"\.(tmp|old)$|\.tmp\.", p.name))


def files_of(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def resume_ends_as_uninterrupted(work: Path, straight: Path) -> None:
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


@pytest.mark.parametrize("phase, stages, nth", SIGKILL_POINTS, ids=[point[0] for point in SIGKILL_POINTS])
def test_sigkill_then_resume_ends_as_an_uninterrupted_run(uninterrupted, tmp_path, phase, stages, nth):
    recipe, straight = uninterrupted
    work = tmp_path / straight.name  # the published files are named after the work dir
    killed = subprocess.run(
        [sys.executable, "-c", SIGKILL_AT, json.dumps(stages), str(nth), str(recipe), "--work-dir", str(work)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, (phase, killed.returncode, killed.stderr[-3000:])
    resume_ends_as_uninterrupted(work, straight)


@pytest.mark.parametrize("phase, kills, left", SIMULATED_KILLS, ids=[case[0] for case in SIMULATED_KILLS])
def test_a_kill_then_resume_ends_as_an_uninterrupted_run(uninterrupted, tmp_path, phase, kills, left):
    recipe, straight = uninterrupted
    work = tmp_path / straight.name
    for run, (stages, nth) in enumerate(kills):
        before = (work / "recipe.yaml").read_bytes() if run else None
        with pytest.raises(Killed), killed_at(stages, nth):
            train(load_recipe(work / "recipe.yaml" if run else recipe), work, resume_from="auto" if run else None)
        if run:  # what a reader finds after a resume was killed: the files it rewrites whole, as they were
            assert (work / "recipe.yaml").read_bytes() == before
            assert [row["epoch"] for row in deterministic_rows(work)] in ([1], [1, 2])
    assert leftovers(work) == left
    resume_ends_as_uninterrupted(work, straight)
