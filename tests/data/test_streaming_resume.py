"""A stream resumed in the middle of an epoch goes on with the next batch: every sample of the epoch once."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from hfcls.artifacts.checkpoint import read_state
from hfcls.artifacts.run_dir import find_latest_checkpoint
from hfcls.data.build import build_datasets, build_train_loader
from hfcls.engine.setup import accelerator_session
from hfcls.errors import HfclsError

from conftest import REPO, tiny_recipe_dict, write_recipe
from layouts import isolated_cache, numbered_stream_recipe, save_numbered  # noqa: F401


def stream_recipe(tmp_path, workers, steps):
    return numbered_stream_recipe(
        tmp_path, count=40, shards=4, grey_step=1, num_workers=workers, steps_per_epoch=steps, shuffle_buffer=8
    )


def numbers(batch) -> list:
    return [int(image[0, 0, 0]) for image in batch["pixel_values"]]


def read_epoch(recipe, epoch, resume_state=None, stop_after=None):
    """(numbers of the batches read, the loader's state after them) of one epoch, from a fresh loader."""
    with accelerator_session(recipe) as accelerator:
        loader = build_train_loader(recipe, build_datasets(recipe.data, recipe.seed, ("train",))["train"], accelerator)
        loader.set_epoch(epoch)
        if resume_state is not None:
            loader.load_state_dict(json.loads(json.dumps(resume_state)))  # as a checkpoint stores it
        read = []
        for batch in loader:
            read.append(numbers(batch))
            if stop_after is not None and len(read) == stop_after:
                break
        return read, loader.state_dict()


@pytest.mark.parametrize("workers", [0, 2])
def test_a_resumed_epoch_reads_what_the_uninterrupted_one_reads(tmp_path, workers):
    # 40 rows in 4 shards, batches of 4: a pass is 10 batches, so 15 steps start a second pass.
    recipe = stream_recipe(tmp_path, workers, steps=15)
    whole, _ = read_epoch(recipe, epoch=1)
    assert len(whole) == 15
    first_pass = [n for batch in whole[:10] for n in batch]
    assert sorted(first_pass) == list(range(40))  # every sample of the pass once
    for stop in (1, 3, 10, 12):  # early, mid-pass, at the pass's end, in the second pass
        head, state = read_epoch(recipe, epoch=1, stop_after=stop)
        tail, _ = read_epoch(recipe, epoch=1, resume_state=state)
        assert head + tail == whole, f"stopped after {stop} batches"
    other, _ = read_epoch(recipe, epoch=2)
    assert other != whole  # each epoch is shuffled anew


def test_a_stream_resumes_only_with_its_worker_count(tmp_path):
    _, state = read_epoch(stream_recipe(tmp_path, workers=2, steps=4), epoch=0, stop_after=2)
    with pytest.raises(HfclsError, match="data.num_workers"):
        read_epoch(stream_recipe(tmp_path / "other", workers=1, steps=4), epoch=0, resume_state=state)


def start_training(args):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "hfcls.train", *map(str, args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_in_a_streaming_epoch_resumes_at_the_next_batch(tmp_path):
    """The run hfcls-train stops on SIGTERM in the middle of a streaming epoch ends, after
    --resume-from auto, with exactly the weights of a run never stopped. Only the stopped run needs a
    process of its own; the two others train in this one."""
    from hfcls.api import train
    from hfcls.recipe import load_recipe

    save_numbered(tmp_path / "saved", count=64, shards=4, grey_step=1)
    data = {
        "train": {"type": "disk", "path": str(tmp_path / "saved"), "streaming": True},
        "val": None,
        "batch_size": 4,
        "train_pipeline": [],
        "num_workers": 2,
        "steps_per_epoch": 300,
        "shuffle_buffer": 8,
    }
    recipe = write_recipe(
        tmp_path / "r.yaml",
        tiny_recipe_dict(
            None, None, data=data, train={"epochs": 1, "deterministic": True}, checkpoint={"interval_steps": 20}
        ),
    )
    train(load_recipe(recipe), tmp_path / "a", validate=False)

    work = tmp_path / "b"
    process = start_training([recipe, "--work-dir", work, "--no-validate"])
    deadline = time.monotonic() + 120
    while not (work / "checkpoints" / "step_20").is_dir():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, err[-2000:]
    stopped = read_state(find_latest_checkpoint(work))
    assert 20 <= stopped.step < 300 and stopped.batch_in_epoch == stopped.step
    assert stopped.loader["batches"] == stopped.step and stopped.loader["workers"] == 2

    train(load_recipe(recipe), work, validate=False, resume_from="auto")
    expected = load_file(tmp_path / "a" / "checkpoints" / "epoch_1" / "model.safetensors")
    got = load_file(work / "checkpoints" / "epoch_1" / "model.safetensors")
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)
