"""A training run's work dir, and the one module that knows it: what each entry is called, which
run an artifact belongs to, which checkpoints it holds, its lock and its metrics rows.

    work_dir/
      recipe.yaml            the resolved recipe, exactly what ran
      log.txt, metrics.jsonl, tensorboard/
      hfcls.lock             held by the run training here (host, PID, start time)
      checkpoints/epoch_E/   after epoch E; step_S/ after optimizer step S mid-epoch (hfcls.artifacts.checkpoint)
      latest/, best/         Hugging Face folders of the evaluated weights (the EMA when there is one)
      publish/<name>-<sha256[:8]>.safetensors (and a Hugging Face folder of the same name)
      previous/<time>/       an earlier run's files, moved aside by hfcls-train --restart
    anywhere: <name>.onnx from hfcls-export, metadata under the same key as a published file's

A published file's name carries the first 8 hex digits of its own sha256, and
its metadata (one key, `hfcls`) holds the model config, class names and preprocessing.

The lock: `hfcls.lock` holds the host, PID and start time of the run that has it,
under an exclusive `flock`. The kernel drops an flock when its process ends, however
it ends (SIGKILL or a crash included), so a lock file left behind without one is
stale: the next run takes it over and says whose it was. A live holder makes a
second run stop at once, with the holder named. Only the job's global rank 0 takes
it; the other processes write nothing in the work dir.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import stat
from contextlib import contextmanager
from pathlib import Path

from hfcls.artifacts.checkpoint import STATE_FILE, TrainState, checked_state, checkpoint_name, read_state, remove
from hfcls.errors import HfclsError
from hfcls.files import check_output, open_own, storage_errors, write_atomic
from hfcls.logs import append_jsonl, read_jsonl

logger = logging.getLogger(__name__)

RECIPE_FILE = "recipe.yaml"
LOCK_FILE = "hfcls.lock"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
EXPORTS = ("latest", "best")
EXPORT_RESULTS = (*EXPORTS, "publish", METRICS_FILE)  # what a finished run leaves besides its checkpoints
PREVIOUS = "previous"  # earlier runs' files, moved aside by --restart (set_aside)
RUN_NAMES = {
    RECIPE_FILE,
    LOCK_FILE,
    CHECKPOINTS,
    PREVIOUS,
    *EXPORT_RESULTS,
    "log.txt",
    "tensorboard",
}  # a run's own entries
ONNX_SUFFIX = ".onnx"  # hfcls-export's graphs, their metadata under METADATA_KEY

HASH_CHARS = 8
HASHED_NAME = re.compile(r"-([0-9a-f]{8})\.safetensors$")
METADATA_KEY = "hfcls"  # beside "format": "pt"; publish sorts the keys, which safetensors writes in random order


# ----------------------------------------------------------------------------- the run a path belongs to


def work_dir_of(path) -> Path | None:
    """The work dir `path` is or lies in (best/, checkpoints/epoch_N, publish/<name>-<hash>...): the
    nearest folder holding a recipe.yaml; None outside any run."""
    here = Path(path).resolve()
    return next((folder for folder in (here, *here.parents) if (folder / RECIPE_FILE).is_file()), None)


def run_owning(path) -> Path | None:
    """The work dir whose own files writing `path` would touch: `path` is the work dir, one of its
    entries or anything inside them. A new name beside a run's entries (work_dir/best-hub) is not its."""
    here, run = Path(path).resolve(), work_dir_of(path)
    if run is None or (here.parent == run and here.name not in RUN_NAMES):
        return None
    return run


# ----------------------------------------------------------------------------- its checkpoints


def checkpoint_folder(work_dir: Path, state: TrainState) -> Path:
    return Path(work_dir) / CHECKPOINTS / checkpoint_name(state)


def scan_checkpoints(work_dir: Path) -> tuple:
    """([(state, folder)] of the intact checkpoints, oldest first; [HfclsError] of the damaged ones)."""
    intact, damaged = [], []
    for folder in (Path(work_dir) / CHECKPOINTS).glob("*_*"):
        try:
            state = read_state(folder)
        except HfclsError as error:
            damaged.append(error)
            continue
        if state is not None:
            intact.append((state, folder))
    # At equal steps an epoch-end checkpoint is newer than a mid-epoch one.
    return sorted(intact, key=lambda item: (item[0].step, item[0].batch_in_epoch == 0)), damaged


def find_latest_checkpoint(work_dir: Path) -> Path | None:
    intact = scan_checkpoints(work_dir)[0]
    return intact[-1][1] if intact else None


def prune_checkpoints(work_dir: Path, max_keep: int | None, best_epoch: int | None) -> None:
    """Keep the newest `max_keep` checkpoints and the best epoch's; drop leftover temporary folders."""
    checkpoints = Path(work_dir) / CHECKPOINTS
    for leftover in [*checkpoints.glob("*.tmp"), *checkpoints.glob("*.old")]:
        shutil.rmtree(leftover, ignore_errors=True)
    if max_keep is None:
        return
    for _, folder in scan_checkpoints(work_dir)[0][:-max_keep]:
        if best_epoch is not None and folder.name == f"epoch_{best_epoch}":
            continue
        logger.info("removing old checkpoint %s (checkpoint.max_keep=%d)", folder, max_keep)
        remove(folder)


def resolve_resume(resume_from: str | None, work_dir: Path) -> Path | None:
    """The checkpoint folder `resume_from` means ("auto": the newest intact one); without it, make sure
    the work dir holds no earlier run, which a new one would overwrite."""
    if resume_from is None:
        check_fresh_work_dir(work_dir)
        return None
    if resume_from == "auto":
        return newest_checkpoint(work_dir)
    path = Path(resume_from)
    if not path.is_dir():
        raise HfclsError(f"resume_from {resume_from}: no such checkpoint folder", param="resume_from")
    if not (path / STATE_FILE).is_file():
        raise HfclsError(
            f"resume_from {resume_from}: not a complete hfcls checkpoint (no {STATE_FILE}); "
            "pass a checkpoints/epoch_N or step_N folder, or --resume-from auto",
            param="resume_from",
        )
    checked_state(path)
    return path


def restart_hint(work_dir: Path) -> str:
    """The way forward every stop at an earlier run's files names."""
    return (
        f"pass --restart to start the run over (its files are moved aside to {Path(work_dir) / PREVIOUS}/<time>, "
        "nothing is deleted), or choose another --work-dir"
    )


def newest_checkpoint(work_dir: Path) -> Path:
    """--resume-from auto: the newest intact checkpoint; where there is none, the way forward."""
    intact, damaged = scan_checkpoints(work_dir)
    for error in damaged:
        logger.warning("--resume-from auto: skipping %s", error)
    if intact:
        return intact[-1][1]
    found = f"only {len(damaged)} damaged (first: {damaged[0]})" if damaged else "none"
    forward = (
        restart_hint(work_dir)
        if earlier_results(work_dir)
        else "start without --resume-from (nothing was trained here yet)"
    )
    raise HfclsError(
        f"resume_from auto: no complete checkpoint under {work_dir / CHECKPOINTS} ({found}); {forward}",
        param="resume_from",
    )


def check_fresh_work_dir(work_dir: Path) -> None:
    """A new run starts only where no earlier run left checkpoints or results."""
    intact = scan_checkpoints(work_dir)[0]
    if intact:
        raise HfclsError(
            f"work dir {work_dir} already holds checkpoints (newest: {intact[-1][1].name}); pass "
            f"--resume-from auto (or --resume) to continue that run, {restart_hint(work_dir)}"
        )
    left = earlier_results(work_dir)
    if left:
        raise HfclsError(
            f"work dir {work_dir} holds the results of an earlier run ({', '.join(left)}) but no checkpoint "
            f"to continue it from; nothing was changed: {restart_hint(work_dir)}"
        )


def earlier_results(work_dir: Path) -> list:
    """What an earlier run left that a new one would write over: its results, its damaged checkpoints."""
    damaged = scan_checkpoints(work_dir)[1]
    left = [name for name in EXPORT_RESULTS if (Path(work_dir) / name).exists()]
    return left + ([f"{len(damaged)} damaged checkpoint(s)"] if damaged else [])


def aside_folder(work_dir: Path) -> Path:
    """Where --restart moves an earlier run's files: work_dir/previous/<when it is moved>."""
    return Path(work_dir) / PREVIOUS / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")


def start_over(work_dir: Path, resume_from: str | None) -> Path | None:
    """--restart: a new run where an earlier one left files, which `set_aside` moves first (on the job's
    rank 0; the other processes write nothing in the work dir). Returns where they went, or None."""
    if resume_from is not None:
        raise HfclsError(
            "restart and resume_from exclude each other: restart starts the run over (the earlier files "
            "moved aside); resume_from continues it",
            param="restart",
        )
    return set_aside(work_dir) if os.environ.get("RANK", "0") == "0" else None


def set_aside(work_dir: Path) -> Path | None:
    """Move every file an earlier run left in `work_dir` (recipe, logs, metrics, checkpoints, exports)
    into `aside_folder`, renamed, never copied or deleted; return it (None when there was nothing)."""
    work_dir = Path(work_dir)
    entries = [work_dir / name for name in sorted(RUN_NAMES - {LOCK_FILE, PREVIOUS}) if (work_dir / name).exists()]
    if not entries:
        return None
    aside = aside_folder(work_dir)
    while aside.exists():  # two restarts within a second
        aside = aside.with_name(aside.name + "+")
    aside.mkdir(parents=True)
    for entry in entries:
        entry.rename(aside / entry.name)
    return aside


# ----------------------------------------------------------------------------- metrics.jsonl


def append_row(work_dir: Path, row: dict) -> None:
    append_jsonl(Path(work_dir) / METRICS_FILE, row)


REPAIR_HINT = "continuing the run (hfcls-train {work_dir}/recipe.yaml --work-dir {work_dir} --resume) repairs it from its checkpoint"


def read_rows(work_dir: Path, repairing: bool = False) -> list:
    """The run's metrics.jsonl rows, oldest first (none before its first epoch); a torn last line is
    left out, with a warning unless the caller is `repairing` it."""
    path = Path(work_dir) / METRICS_FILE
    hint = None if repairing else REPAIR_HINT.format(work_dir=work_dir)
    return read_jsonl(path, hint) if path.is_file() else []


def restore_rows(work_dir: Path, state: TrainState) -> None:
    """Make metrics.jsonl hold exactly one row per epoch up to the resumed checkpoint's.

    Rows of epochs after it (their epochs are trained again) and a line torn by a
    kill go; the checkpoint's own row, lost when a kill came between the save and
    the row, comes back.
    """
    path = Path(work_dir) / METRICS_FILE
    rows = [row for row in read_rows(work_dir, repairing=True) if row.get("epoch", 0) <= state.epoch]
    if state.row and not any(row.get("epoch") == state.epoch for row in rows):
        rows.append(state.row)
        logger.info("restored the metrics.jsonl row of epoch %d from its checkpoint", state.epoch)
    content = "".join(json.dumps(row) + "\n" for row in rows)
    if not path.is_file() or path.read_text() != content:
        write_atomic(path, content)
        logger.info("%s now holds one row per epoch up to epoch %d (torn or later rows removed)", path, state.epoch)


# ----------------------------------------------------------------------------- the lock


@contextmanager
def work_dir_lock(work_dir):
    """Hold the work dir's lock for the block; on the processes other than the job's rank 0, do nothing."""
    if os.environ.get("RANK", "0") != "0":  # set by `accelerate launch` (torchrun) before Python starts
        yield
        return
    work_dir = Path(work_dir)
    path = work_dir / LOCK_FILE
    check_output(work_dir, overwrite=True, kind="folder", what="work_dir", param="work_dir")  # resume decides the rest
    with storage_errors(f"in work dir {work_dir}", work_dir, "choose a work dir you can write to"):
        work_dir.mkdir(parents=True, exist_ok=True)
        fd = acquire(path)
    try:
        with storage_errors(f"the lock {path}", work_dir, "free some space, or choose another work dir"):
            previous = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            if previous:
                logger.warning(
                    "work dir %s: taking over the lock of a run that ended without releasing it (%s)",
                    work_dir,
                    describe_holder(previous),
                )
            write_holder(fd)
        yield
    finally:
        release(path, fd)


def acquire(path: Path) -> int:
    """An fd holding the flock of the file at `path` (the same file as is there now). The lock is
    opened without following a symbolic link, and made with O_EXCL when there is none: a link or a
    folder planted at its name is refused, never written through."""
    while True:
        try:
            fd = open_own(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        except FileExistsError:  # a lock left by a run that ended (or one that still holds it)
            fd = open_own(path, os.O_RDWR)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise HfclsError(f"{path} is not a plain file; move it away, or choose another --work-dir")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise HfclsError(
                    f"cannot lock {path} ({error.strerror}): hfcls needs a file system with file "
                    "locks (local or NFS) for the work dir"
                ) from None
            raise HfclsError(
                f"work dir {path.parent} is in use by another training run ({describe_holder(holder)}); "
                "wait for it to end, or choose another --work-dir"
            ) from None
        # The holder before us removes the file when it ends: make sure ours is still the one at `path`.
        try:
            if os.fstat(fd).st_ino == os.lstat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def write_holder(fd: int) -> None:
    holder = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
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


def describe_holder(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"host {info['host']}, PID {info['pid']}, started {info['started']}"
    except (ValueError, KeyError, TypeError):
        return f"holder unknown: {holder[:80]!r}" if holder else "holder unknown"
