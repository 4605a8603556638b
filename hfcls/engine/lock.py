"""One training run per work dir: `work_dir/hfcls.lock`, which names its holder.

The file holds the host, PID and start time of the run that has it, under an
exclusive `flock`. The kernel drops an flock when its process ends, however it
ends (SIGKILL or a crash included), so a lock file left behind
without one is stale: the next run takes it over and says whose it was. A live
holder makes a second run stop at once, with the holder named. Only the job's
global rank 0 takes it; the other processes write nothing in the work dir.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from hfcls.artifacts.layout import LOCK_FILE
from hfcls.errors import HfclsError
from hfcls.files import storage_errors

logger = logging.getLogger(__name__)


@contextmanager
def work_dir_lock(work_dir):
    """Hold the work dir's lock for the block; on the processes other than the job's rank 0, do nothing."""
    if os.environ.get("RANK", "0") != "0":  # set by `accelerate launch` (torchrun) before Python starts
        yield
        return
    work_dir = Path(work_dir)
    path = work_dir / LOCK_FILE
    with storage_errors(f"in work dir {work_dir}", work_dir, "choose a work dir you can write to"):
        work_dir.mkdir(parents=True, exist_ok=True)
        fd = acquire(path)
    try:
        with storage_errors(f"the lock {path}", work_dir, "free some space, or choose another work dir"):
            previous = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            if previous:
                logger.warning("work dir %s: taking over the lock of a run that ended without releasing it "
                               "(%s)", work_dir, describe(previous))
            write_holder(fd)
        yield
    finally:
        release(path, fd)


def acquire(path: Path) -> int:
    """An fd holding the flock of the file at `path` (the same file as is there now)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise HfclsError(f"cannot lock {path} ({error.strerror}): hfcls needs a file system with file "
                                 "locks (local or NFS) for the work dir") from None
            raise HfclsError(f"work dir {path.parent} is in use by another training run ({describe(holder)}); "
                             "wait for it to end, or choose another --work-dir") from None
        # The holder before us removes the file when it ends: make sure ours is still the one at `path`.
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def write_holder(fd: int) -> None:
    holder = {"host": socket.gethostname(), "pid": os.getpid(),
              "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    os.fsync(fd)


def release(path: Path, fd: int) -> None:
    try:
        path.unlink()  # while still held, so that nobody locks a file about to vanish
    except FileNotFoundError:
        pass
    finally:
        os.close(fd)


def describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"host {info['host']}, PID {info['pid']}, started {info['started']}"
    except (ValueError, KeyError, TypeError):
        return f"holder unknown: {holder[:80]!r}" if holder else "holder unknown"
