"""CPU seconds of a training command, split between its own process and its children (DataLoader
workers, which decode and augment): the share of the machine a tool spends on its input pipeline.

A worker's time is counted two ways, and the larger is kept: the kernel's total of the children the
command has waited for (its `cutime` + `cstime`, read while the command is a zombie, before it is
reaped), and the last reading of each child sampled while it ran (for a child that outlived the
command or was never waited for; at most one sampling interval of its work is missed).
"""

from __future__ import annotations

import os
import threading

import psutil


class ChildrenCpu:
    """Samples the CPU seconds of every descendant of `pid` until `stop()`."""

    def __init__(self, pid: int, interval: float = 0.25):
        self.process, self.interval, self.seen = psutil.Process(pid), interval, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                children = self.process.children(recursive=True)
            except psutil.Error:  # the command has exited
                return
            for child in children:
                try:
                    times = child.cpu_times()
                except psutil.Error:  # a worker that just exited
                    continue
                self.seen[child.pid] = times.user + times.system

    def stop(self) -> float:
        """The children's CPU seconds as last sampled."""
        self._stop.set()
        self._thread.join()
        return sum(self.seen.values())


def wait_and_split(popen, sampler: ChildrenCpu) -> tuple:
    """Wait for `popen` to exit; (exit status, its own CPU seconds, its children's CPU seconds)."""
    os.waitid(os.P_PID, popen.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped: /proc still has it
    try:
        times = psutil.Process(popen.pid).cpu_times()
        own, waited = times.user + times.system, times.children_user + times.children_system
    except psutil.Error:
        own = waited = float("nan")
    status = popen.wait()  # it has exited: this only reaps it
    return status, own, max(waited, sampler.stop())
