"""torch's thread count: the cores free at the start, OMP_NUM_THREADS when set, a resumed run's own."""

import os
import subprocess
import sys
import time

import torch

from hfcls.engine.threads import choose_threads, other_runnable_tasks, usable_cores


def test_a_cgroup_quota_caps_the_cores(tmp_path):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("50000 100000\n")  # half a core
    assert usable_cores(str(cpu_max)) == 1
    cpu_max.write_text("max 100000\n")
    assert usable_cores(str(cpu_max)) == usable_cores(str(tmp_path / "none")) >= 1


def test_the_running_count_leaves_this_process_out(tmp_path):
    loadavg = tmp_path / "loadavg"
    loadavg.write_text("2.10 1.50 0.90 3/412 12345\n")
    assert other_runnable_tasks(str(loadavg)) == 2
    assert other_runnable_tasks(str(tmp_path / "missing")) == 0


def test_busy_processes_are_counted():
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        time.sleep(0.5)  # both past their start-up, spinning
        assert other_runnable_tasks() >= 2
    finally:
        for process in busy:
            process.kill()


def test_omp_num_threads_decides_and_a_resumed_run_keeps_its_count(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        assert choose_threads(resumed=2) == 1  # the environment wins
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert choose_threads(resumed=1) == torch.get_num_threads() == 1
        assert 1 <= choose_threads() <= usable_cores()
    finally:
        torch.set_num_threads(before)


def test_the_checkpoint_records_the_count(two_epoch_run):
    import json

    state = json.loads((two_epoch_run / "checkpoints" / "epoch_2" / "hfcls_state.json").read_text())
    assert state["cpu_threads"] == int(os.environ["OMP_NUM_THREADS"])  # set for the test processes (conftest)
