"""Small disks for tests of full and read-only file systems: a tmpfs mounted for the test (root only)."""

import errno
import os
import subprocess
from contextlib import contextmanager

import pytest


@contextmanager
def small_tmpfs(folder, size="256k", read_only=False):
    """A tmpfs of `size` mounted at `folder` (root only; skipped where mounting is not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder):
    """Write into `folder` until the disk is full."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == errno.ENOSPC


def leave_free(folder, size: int):
    """Fill the disk of `folder` but for about `size` bytes."""
    stats = os.statvfs(folder)
    with open(folder / "filler", "wb") as f:
        f.write(b"\0" * max(stats.f_bavail * stats.f_frsize - size, 0))
