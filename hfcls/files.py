"""Writing without losing anything: new places only, atomic replacement, fsync before a rename publishes.

Every file or folder hfcls writes is made under a temporary name beside its
destination, flushed to the disk (fsync), and renamed into place; the folder
holding it is then fsynced, so that the rename itself survives a power loss. A
reader sees the old version or the new one, whole, never a mix. What a user
already has is replaced only when they say so (`--overwrite`), and a full or
read-only disk is one line naming the place, not a traceback.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path

from hfcls.errors import HfclsError

# What a full, read-only or forbidden place raises (EDQUOT: over a quota).
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
PROBE_BYTES = 64 * 1024


# ----------------------------------------------------------------------------- durability


def fsync_path(path) -> None:
    """Flush one file, or one folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder) -> None:
    """Flush every file under `folder`, then the folders themselves, deepest first."""
    folders = []
    for root, _, names in os.walk(folder):
        folders.append(root)
        for name in names:
            fsync_path(os.path.join(root, name))
    for root in reversed(folders):
        fsync_path(root)


def open_own(path, flags: int, mode: int = 0o644) -> int:
    """os.open of a file hfcls keeps in a folder of its own (a lock, a state file, a temporary file)
    that never follows a symbolic link: a link planted there would have hfcls write into the file
    it points at. A link, or a folder, where the file belongs is one line naming it."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:  # O_NOFOLLOW met a symbolic link
            raise HfclsError(
                f"{path} is a symbolic link (to {os.readlink(path)}); hfcls writes its own files there and "
                "never follows a link: remove the link, or choose another folder"
            ) from None
        if error.errno == errno.EISDIR or (
            error.errno == errno.EEXIST and not os.path.islink(path) and os.path.isdir(path)
        ):
            raise HfclsError(
                f"{path} is a folder where hfcls keeps a file; move it away, or choose another folder"
            ) from None
        raise


def new_temporary(path) -> int:
    """An fd of a fresh, empty temporary file at `path` (O_EXCL: created now, by this call): a file
    left there by an earlier, killed write is removed first; a link there is removed, never followed."""
    if os.path.lexists(path) and not os.path.isdir(path):
        os.unlink(path)
    return open_own(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)


def write_atomic(path, content) -> None:
    """Replace `path` with `content` (str or bytes): a reader sees the old file or the new one."""
    path = Path(path)
    data = content.encode() if isinstance(content, str) else content
    tmp = path.with_name(f".{path.name}.tmp")
    with os.fdopen(new_temporary(tmp), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def append_line(path, line: str) -> None:
    """Append one line and flush it to the disk before returning (never through a symbolic link)."""
    with os.fdopen(open_own(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT), "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


@contextmanager
def replacing(path):
    """Write `path` whole or not at all: the block writes the temporary path it is given (which keeps
    `path`'s suffix, from which writers such as matplotlib pick the format), and that file then
    replaces `path`. A failure leaves whatever `path` held before."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    try:
        yield tmp
        publish_file(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def publish_file(tmp, path) -> None:
    """Rename the finished `tmp` onto `path`, its bytes on the disk first."""
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(Path(path).parent)


def temporary_folder(folder) -> Path:
    """Where `folder` is built before publish_folder swaps it in: `folder.tmp` beside it, the name
    the next publish (and checkpoint pruning) recognises as left over."""
    folder = Path(folder)
    return folder.with_name(folder.name + ".tmp")


def publish_folder(tmp, folder) -> None:
    """Swap the finished folder `tmp` in for `folder` (new or replaced), its files on the disk first.

    A process killed between the two renames leaves `folder.old` (the previous
    version, whole) and `folder.tmp` (the new one, whole); the next publish
    finishes the swap. Nothing is deleted before its replacement is in place.
    """
    tmp, folder = Path(tmp), Path(folder)
    old = folder.with_name(folder.name + ".old")
    fsync_tree(tmp)
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)  # a swap finished but not cleaned up: `folder` is newer
        folder.rename(old)
    tmp.rename(folder)
    fsync_path(folder.parent)
    shutil.rmtree(old, ignore_errors=True)


def publish_links(source, folder) -> None:
    """Publish `folder` as a copy of the finished folder `source` whose files are hard links to
    its files: no byte is written twice. Neither folder changes when the other is replaced later,
    since publish_folder swaps in new files and never rewrites a file in place."""
    tmp = temporary_folder(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp, copy_function=_link_or_copy)
    publish_folder(tmp, folder)


def _link_or_copy(source, destination) -> None:
    try:
        os.link(source, destination)
    except OSError as error:
        # EPERM is also what a file system without hard links answers (FAT); a full disk stays an error
        if error.errno in STORAGE_ERRNOS - {errno.EPERM}:
            raise
        shutil.copy2(source, destination)  # a file system without hard links (FAT, some network mounts)


# ----------------------------------------------------------------------------- outputs that exist


def is_occupied(path) -> bool:
    """A file, or a folder with anything in it."""
    path = Path(path)
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def check_new_output(path, overwrite: bool, what: str = "--out", param: str | None = None) -> None:
    """Refuse to write over something that is already there, unless `overwrite`. `param`: the
    parameter `what` names (hfcls.errors.HfclsError)."""
    if overwrite or not is_occupied(path):
        return
    kind = "a non-empty folder" if Path(path).is_dir() else "a file"
    raise HfclsError(
        f"{what} {path} is {kind} already; nothing was written: choose a new path, or pass --overwrite to replace it",
        param=param,
    )


def check_output(path, overwrite: bool = False, *, kind: str = "file", what: str = "--out", param=None) -> None:
    """The one rule for every path a command writes, applied before any work starts.

    `kind`: "file", a file to write (a folder there is refused, `overwrite` or not); "folder", a
    folder to fill (a file there is refused); "stem", the start of names completed later
    (OUT-<hash>.safetensors: those are checked when the hash is known). Something already there
    (a file, or a folder with anything in it) is refused unless `overwrite`. The place must take a
    file: its nearest existing folder writable, with room. `what` names the path as the user gave
    it (a flag); `param`, the library parameter it is (hfcls.errors.HfclsError)."""
    path = Path(path)
    if kind == "file" and path.is_dir():
        raise HfclsError(f"{what} {path} is a folder where a file goes; nothing was written: name a file", param=param)
    if kind == "folder" and path.exists() and not path.is_dir():
        raise HfclsError(
            f"{what} {path} is a file where a folder goes; nothing was written: name a folder",
            param=param,
        )
    if kind != "stem":
        check_new_output(path, overwrite, what, param=param)
    check_writable(path if kind == "folder" else path.parent, f"{what} {path}", param=param)


def check_writable(folder, what: str, param: str | None = None) -> None:
    """Refuse now, before any work, a place that cannot take a file: read-only, forbidden or full.
    `param`: the parameter `what` names (hfcls.errors.HfclsError)."""
    folder = Path(folder).resolve()
    while not folder.exists():  # the nearest existing folder must let us create the rest
        folder = folder.parent
    if not folder.is_dir():
        raise HfclsError(f"{what}: cannot write there ({folder} is not a folder); choose another path", param=param)
    cause = probe(folder)
    if cause is not None:
        raise HfclsError(
            f"{what}: cannot write in {folder} ({cause.strerror}); nothing was done: "
            "free space, fix the permissions or choose another path",
            param=param,
        )


def probe(folder) -> OSError | None:
    """The error writing a small file in `folder` meets, or None when it can be written."""
    path = Path(folder) / f".hfcls-probe-{os.getpid()}"
    try:
        with open(path, "wb") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        return error
    finally:
        try:
            path.unlink()
        except OSError:
            pass
    return None


# ----------------------------------------------------------------------------- full and read-only disks


def storage_cause(error: BaseException, folder) -> OSError | None:
    """The full, read-only or forbidden place behind a failed write, or None for another failure.

    Python's own errors carry the errno; safetensors words it "(os error 28)"; torch's
    zip writer only says a write failed, so the place is tried again with a probe.
    """
    if isinstance(error, OSError):
        return error if error.errno in STORAGE_ERRNOS else None
    match = re.search(r"os error (\d+)", str(error))
    if match and int(match.group(1)) in STORAGE_ERRNOS:
        code = int(match.group(1))
        return OSError(code, os.strerror(code))
    folder = Path(folder)
    while not folder.exists():
        folder = folder.parent
    cause = probe(folder)
    return cause if cause is not None and cause.errno in STORAGE_ERRNOS else None


@contextmanager
def folder_written(folder, what: str, hint: str):
    """A new `folder.tmp` for the block to fill, swapped in for `folder` when the block ends (publish_folder);
    a full, read-only or forbidden disk met on the way is one line naming `what` (storage_errors), the
    temporary folder removed and `folder` as it was."""
    folder = Path(folder)
    tmp = temporary_folder(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    with storage_errors(what, folder.parent, hint, cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True)):
        tmp.mkdir(parents=True)
        yield tmp
        publish_folder(tmp, folder)


@contextmanager
def storage_errors(what: str, folder, hint: str, cleanup=None):
    """Turn a full, read-only or forbidden disk met in the block into one line naming `what`.

    `cleanup` runs after the cause is found (a half-written temporary folder still
    fills the disk while it is looked at), whatever the failure.
    """
    try:
        yield
    except BaseException as error:
        ours = isinstance(error, HfclsError) or not isinstance(error, Exception)
        cause = None if ours else storage_cause(error, folder)
        if cleanup is not None:
            cleanup()
        if cause is None:
            raise
        raise HfclsError(f"cannot write {what}: {cause.strerror}; {hint}") from None
