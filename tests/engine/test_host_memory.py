"""Freed memory kept in the process on CPU: training steps stop paying the kernel's page faults for the
memory the previous step freed; nothing changes where the C library is not glibc."""

import platform
import subprocess
import sys
import textwrap

import pytest

from hfcls.engine import host_memory
from hfcls.engine.setup import accelerator_session
from hfcls.recipe import load_recipe

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc settings")

# Training steps of a small CNN whose activations and their gradients (8 MiB each) glibc's own thresholds
# hand back to the kernel; prints the page faults of the last steps, after the warm-up.
STEPS = textwrap.dedent(
    """
    import resource, sys, torch
    from hfcls.engine.host_memory import keep_freed_memory
    if sys.argv[1] == "kept":
        assert keep_freed_memory()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3, padding=1),
        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    def step():
        loss = model(torch.randn(8, 3, 64, 64)).logsumexp(1).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def page_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True, check=True)
    return int(done.stdout.strip())


@glibc
def test_kept_memory_saves_the_page_faults_of_every_step():
    default, kept = page_faults("default"), page_faults("kept")
    # 10 steps of 8 MiB activations: glibc's own thresholds fault thousands of pages back in.
    assert default > 2000
    assert kept * 4 < default


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(host_memory.platform, "libc_ver", lambda: ("", ""))

    def refuse(*args):
        raise AssertionError("mallopt called outside glibc")

    monkeypatch.setattr(host_memory.ctypes, "CDLL", refuse)
    assert host_memory.keep_freed_memory() is False


@glibc
def test_a_refused_threshold_is_reported_not_raised(monkeypatch):
    class Libc:
        def mallopt(self, option, value):
            return 0

    monkeypatch.setattr(host_memory.ctypes, "CDLL", lambda name: Libc())
    assert host_memory.keep_freed_memory() is False


def test_a_cpu_session_keeps_freed_memory(monkeypatch, tiny_recipe):
    calls = []
    monkeypatch.setattr("hfcls.engine.setup.keep_freed_memory", lambda: calls.append(1))
    with accelerator_session(load_recipe(tiny_recipe)) as accelerator:
        assert accelerator.device.type == "cpu"
    assert calls == [1]
