"""The work dir: the run a path belongs to (and the one a write would touch); one run per work dir: a live
holder is named and refused, a SIGKILLed one's lock is taken over, two real runs."""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from hfcls.artifacts.run_dir import LOCK_FILE, run_owning, work_dir_lock, work_dir_of
from hfcls.errors import HfclsError

from conftest import REPO, deterministic_rows, tiny_recipe_dict, write_recipe


def finished_run(work_dir):
    """The entries a finished run leaves (empty: only their names matter here)."""
    for folder in ("checkpoints/epoch_1", "best", "latest", "publish/run-0123abcd"):
        (work_dir / folder).mkdir(parents=True)
    (work_dir / "recipe.yaml").write_text("")
    return work_dir.resolve()


def test_an_artifact_belongs_to_the_nearest_run_above_it(tmp_path):
    run = finished_run(tmp_path / "run")
    for inside in (
        ".",
        "best",
        "checkpoints/epoch_1",
        "publish/run-0123abcd",
        "publish/run-0123abcd.safetensors",
        "exports/onnx/model.onnx",
        "model.onnx",
    ):
        assert work_dir_of(run / inside) == run, inside
    assert work_dir_of(tmp_path / "model.safetensors") is None
    nested = finished_run(run / "exports" / "another")  # a run inside a run's folder is a run of its own
    assert work_dir_of(nested / "best") == nested


def test_a_write_is_refused_among_a_runs_own_entries_not_beside_them(tmp_path):
    run = finished_run(tmp_path / "run")
    for own in (".", "best", "checkpoints", "checkpoints/epoch_1", "publish/new", "metrics.jsonl", "tensorboard/x"):
        assert run_owning(run / own) == run, own
    for beside in ("best-hub", "notes.txt"):  # a new name beside the run's entries
        assert run_owning(run / beside) is None, beside
    assert run_owning(tmp_path / "staged") is None


HOLD = """
import sys, time
from hfcls.artifacts.run_dir import work_dir_lock
with work_dir_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def holder(work_dir) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(work_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_live_holder_is_named_and_a_second_run_refused(tmp_path):
    process = holder(tmp_path / "w")
    try:
        with pytest.raises(
            HfclsError,
            match=rf"^work dir {tmp_path / 'w'} is in use by another training run \(host "
            rf"{socket.gethostname()}, PID {process.pid}, started 20\d\d-.*\); wait",
        ):
            with work_dir_lock(tmp_path / "w"):
                pass
    finally:
        process.kill()
        process.wait()


def test_the_lock_of_a_sigkilled_run_is_taken_over_with_a_warning(tmp_path, caplog):
    process = holder(tmp_path / "w")
    process.send_signal(signal.SIGKILL)
    process.wait()
    left = json.loads((tmp_path / "w" / LOCK_FILE).read_text())
    assert left["pid"] == process.pid  # the file stays; its flock went with the process
    with caplog.at_level(logging.WARNING):
        with work_dir_lock(tmp_path / "w"):
            mine = json.loads((tmp_path / "w" / LOCK_FILE).read_text())
            assert (mine["host"], mine["pid"]) == (socket.gethostname(), os.getpid())
    assert (
        f"taking over the lock of a run that ended without releasing it (host {left['host']}, PID {process.pid}"
        in caplog.text
    )
    assert not (tmp_path / "w" / LOCK_FILE).exists()  # released cleanly: nothing left for the next run to warn about


def test_only_rank_0_takes_the_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with work_dir_lock(tmp_path / "w"):
        assert not (tmp_path / "w" / LOCK_FILE).exists()


# The first run waits before its first checkpoint until the test lets it go (an audit hook on os.rename).
WAIT_FOR_GO = """
import os, sys, time
def wait(event, args):
    if event == "os.rename" and str(args[0]).endswith("epoch_1.tmp"):
        while not os.path.exists(sys.argv[1]):
            time.sleep(0.05)
sys.addaudithook(wait)
from hfcls.cli.train import main
main(sys.argv[2:])
"""


@pytest.mark.slow
def test_two_runs_into_one_work_dir(tmp_path, tiny_data):
    first = write_recipe(tmp_path / "first.yaml", tiny_recipe_dict(*tiny_data, train={"epochs": 2, "log_with": []}))
    second = write_recipe(tmp_path / "second.yaml", tiny_recipe_dict(*tiny_data, train={"epochs": 3}, seed=7))
    work, go = tmp_path / "w", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    running = subprocess.Popen(
        [sys.executable, "-c", WAIT_FOR_GO, str(go), str(first), "--work-dir", str(work)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (work / "recipe.yaml").is_file():  # the first run holds the lock and has started
            assert running.poll() is None and time.monotonic() < deadline, running.communicate()
            time.sleep(0.05)
        refused = subprocess.run(
            [sys.executable, "-m", "hfcls.cli.train", str(second), "--work-dir", str(work)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        go.touch()
        out, err = running.communicate(timeout=300)
    finally:
        running.kill()
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    [line] = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert f"is in use by another training run (host {socket.gethostname()}, PID {running.pid}, started" in line
    assert running.returncode == 0, err[-3000:]
    # The first run alone wrote here: its recipe, its two epochs, one row each.
    assert "seed: 0" in (work / "recipe.yaml").read_text()
    assert [row["epoch"] for row in deterministic_rows(work)] == [1, 2]
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["epoch_1", "epoch_2"]
