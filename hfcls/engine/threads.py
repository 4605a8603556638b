"""How many threads torch's CPU kernels use: the cores this process can have, not all of them.

torch starts one OpenMP thread per core, and every parallel kernel waits at its end for the
slowest of them. When other processes keep cores busy (a laptop, a CI runner, a Slurm node
shared by jobs), one of the threads is off its core for whole scheduler slices and the
others wait for it. Measured on 2 cores with one busy process per core (benchmarks/README.md):
the digits ResNet-18 in memory trained 6 epochs in 81.6 s on 2 threads and 48.6 s on 1,
against 23.9 s and 32.7 s on the quiet machine. So at the start hfcls counts the other
runnable tasks and leaves their cores to them. OMP_NUM_THREADS, when set (torchrun sets it to
1 for several processes a node), decides instead.
"""

from __future__ import annotations

import logging
import os
import statistics
import time

import torch

logger = logging.getLogger(__name__)

SAMPLES, INTERVAL_S = 5, 0.02  # /proc/loadavg read 5 times over 0.1 s: a median, not one instant
TORCH_DEFAULT = torch.get_num_threads()  # one per core, before hfcls changed it


def usable_cores(cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """The cores this process may run on: its CPU affinity, within its cgroup's CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_quota(cpu_max)
    return max(1, min(cores, int(quota))) if quota else cores


def cgroup_quota(cpu_max: str) -> float | None:
    """cgroup v2's cpu.max as a number of cores (None when unlimited or unknown)."""
    try:
        limit, period = open(cpu_max).read().split()
    except (OSError, ValueError):
        return None
    return None if limit == "max" else int(limit) / int(period)


def other_runnable_tasks(loadavg: str = "/proc/loadavg") -> int:
    """Tasks other than this one waiting for or running on a CPU now (/proc/loadavg's running count)."""
    counts = []
    for _ in range(SAMPLES):
        try:
            running = open(loadavg).read().split()[3].split("/")[0]
        except (OSError, IndexError):
            return 0
        counts.append(int(running) - 1)  # this process, reading
        time.sleep(INTERVAL_S)
    return max(0, round(statistics.median(counts)))


def choose_threads(resumed: int = 0) -> int:
    """Set torch's intra-op threads and return them: OMP_NUM_THREADS when set; else a resumed run's
    (`resumed`, from its checkpoint: another count rounds differently, and resume is exact); else the
    cores no other task is using, at least 1."""
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    if resumed > 0:
        threads, why = resumed, "as the run being resumed had"
    else:
        cores, busy = usable_cores(), other_runnable_tasks()
        threads = max(1, min(TORCH_DEFAULT, cores - busy))
        why = f"of {cores} cores, {busy} other task(s) running"
    if threads != TORCH_DEFAULT:
        logger.info("torch threads: %d, %s (set OMP_NUM_THREADS to choose)", threads, why)
    torch.set_num_threads(threads)
    return threads
