"""Writing without losing: atomic replacement, an interrupted folder swap, outputs that exist, full and read-only disks."""

import errno

import pytest
from disks import fill, small_tmpfs

from hfcls.errors import HfclsError
from hfcls.files import (check_new_output, check_writable, publish_folder, publish_links, storage_cause,
                         storage_errors, write_atomic)


def test_write_atomic_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "r.json"
    write_atomic(path, "old")
    write_atomic(path, b"new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_publish_folder_finishes_a_swap_that_a_kill_interrupted(tmp_path):
    folder = tmp_path / "best"
    # Killed between the two renames: the old version is best.old, the new one best.tmp; no best/.
    (tmp_path / "best.old").mkdir()
    (tmp_path / "best.old" / "model").write_text("epoch 1")
    (tmp_path / "best.tmp").mkdir()
    (tmp_path / "best.tmp" / "model").write_text("epoch 2")
    publish_folder(tmp_path / "best.tmp", folder)
    assert (folder / "model").read_text() == "epoch 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    # Killed after both renames, before the clean-up: best/ is the newer one and is kept.
    (tmp_path / "best.old").mkdir()
    (tmp_path / "best.old" / "model").write_text("epoch 1")
    (tmp_path / "best.tmp").mkdir()
    (tmp_path / "best.tmp" / "model").write_text("epoch 3")
    publish_folder(tmp_path / "best.tmp", folder)
    assert (folder / "model").read_text() == "epoch 3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]



def test_a_linked_copy_shares_the_bytes_and_outlives_the_next_export(tmp_path):
    latest = tmp_path / "latest"
    latest.mkdir()
    (latest / "model.safetensors").write_text("epoch 1")
    publish_links(latest, tmp_path / "best")
    assert (tmp_path / "best" / "model.safetensors").stat().st_ino == (latest / "model.safetensors").stat().st_ino
    # The next export swaps a new folder in; best/ keeps epoch 1's bytes.
    (tmp_path / "latest.tmp").mkdir()
    (tmp_path / "latest.tmp" / "model.safetensors").write_text("epoch 2")
    publish_folder(tmp_path / "latest.tmp", latest)
    assert (tmp_path / "best" / "model.safetensors").read_text() == "epoch 1"
    assert (latest / "model.safetensors").read_text() == "epoch 2"
    publish_links(latest, tmp_path / "best")  # and is replaced whole when it improves again
    assert (tmp_path / "best" / "model.safetensors").read_text() == "epoch 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "latest"]

def test_an_existing_output_is_refused_unless_overwrite(tmp_path):
    check_new_output(tmp_path / "new", overwrite=False)
    (tmp_path / "empty").mkdir()
    check_new_output(tmp_path / "empty", overwrite=False)  # an empty folder loses nothing
    (tmp_path / "file").write_text("mine")
    with pytest.raises(HfclsError, match=r"^--out .*file is a file already; nothing was written: .*--overwrite"):
        check_new_output(tmp_path / "file", overwrite=False)
    check_new_output(tmp_path / "file", overwrite=True)
    assert (tmp_path / "file").read_text() == "mine"


def test_a_library_error_is_traced_to_the_full_disk_it_hit(tmp_path):
    # safetensors words the OS error its own way; the errno is read out of it.
    cause = storage_cause(Exception("Error while serializing: I/O error: No space left on device (os error 28)"),
                          tmp_path)
    assert cause.errno == errno.ENOSPC
    # Anything else that failed on a disk with room is not a disk problem: it is raised as it was.
    assert storage_cause(RuntimeError("unexpected pos 576 vs 534"), tmp_path) is None
    with pytest.raises(KeyError):
        with storage_errors("x", tmp_path, "hint"):
            raise KeyError("not a disk error")


def test_full_and_read_only_disks_are_one_line_before_and_during_work(tmp_path):
    with small_tmpfs(tmp_path / "disk") as disk:
        check_writable(disk / "sub" / "results", "--out x")
        fill(disk)
        with pytest.raises(HfclsError, match=r"^--out x: cannot write in .*disk \(No space left on device\); "
                                             r"nothing was done"):
            check_writable(disk / "sub" / "results", "--out x")
        # torch's zip writer says only "unexpected pos": the probe finds the full disk behind it.
        import torch

        cleaned = []
        with pytest.raises(HfclsError, match=r"^cannot write checkpoint: No space left on device; free it"):
            with storage_errors("checkpoint", disk, "free it", cleanup=lambda: cleaned.append(True)):
                torch.save({"w": torch.zeros(100_000)}, disk / "state.pt")
        assert cleaned == [True]
    with small_tmpfs(tmp_path / "read_only", read_only=True) as disk:
        with pytest.raises(HfclsError, match=r"^--out x: cannot write in .*read_only \(Read-only file system\)"):
            check_writable(disk / "results", "--out x")
