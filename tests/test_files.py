"""Writing without losing: atomic replacement, a folder swap or linked copy interrupted at each of its steps
(a kill simulated in-process, tests/kills.py), outputs that exist, full and read-only disks."""

import errno

import pytest

from hfcls.errors import HfclsError
from hfcls.files import (
    append_line,
    check_new_output,
    check_output,
    check_writable,
    publish_folder,
    publish_links,
    replacing,
    storage_cause,
    storage_errors,
    write_atomic,
)

from disks import fill, small_tmpfs
from kills import Killed, killed_at


def test_write_atomic_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "r.json"
    write_atomic(path, "old")
    write_atomic(path, b"new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def version(folder, text):
    """A finished folder whose two files say `text`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_text(text)
    return folder


def says(folder) -> set:
    return {p.read_text() for p in folder.iterdir()}


# (window, stages, n: kills.py; what `best` holds right after the kill, None: no best/; what is beside it).
# The audit hook fires before the operation it sees: a kill at a rename leaves it undone.
PUBLISH_FOLDER_WINDOWS = [
    ("flushing the new files", [("open", r"best\.tmp/config\.json None")], 1, "epoch 1", ["best.tmp"]),
    ("the old one not yet renamed", [("os.rename", r"/best \S*/best\.old$")], 1, "epoch 1", ["best.tmp"]),
    ("between the two renames", [("os.rename", r"/best\.tmp \S*/best$")], 1, None, ["best.old", "best.tmp"]),
    (
        "both renamed, the old one not yet removed",
        [("os.rename", r"/best\.tmp \S*/best$"), ("shutil.rmtree", r"/best\.old\b")],
        1,
        "epoch 2",
        ["best.old"],
    ),
]


@pytest.mark.parametrize(
    "window, stages, nth, holds, beside", PUBLISH_FOLDER_WINDOWS, ids=[w[0] for w in PUBLISH_FOLDER_WINDOWS]
)
def test_publish_folder_finishes_a_swap_that_a_kill_interrupted(tmp_path, window, stages, nth, holds, beside):
    folder = version(tmp_path / "best", "epoch 1")
    version(tmp_path / "best.tmp", "epoch 2")
    with pytest.raises(Killed), killed_at(stages, nth):
        publish_folder(tmp_path / "best.tmp", folder)
    # A reader finds one version whole: best/, or, between the renames, best.old/ beside the new best.tmp/.
    assert says(folder if holds else tmp_path / "best.old") == {holds or "epoch 1"}
    assert sorted(p.name for p in tmp_path.iterdir() if p != folder) == beside
    if (tmp_path / "best.tmp").exists():  # the swap, run again, finishes
        publish_folder(tmp_path / "best.tmp", folder)
        assert says(folder) == {"epoch 2"}
    publish_folder(version(tmp_path / "best.tmp", "epoch 3"), folder)  # the next export cleans up
    assert says(folder) == {"epoch 3"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


PUBLISH_LINKS_WINDOWS = [
    ("linking the files", [("os.link", r"latest/model\.safetensors ")]),
    ("swapping the linked copy in", [("os.rename", r"/best\.tmp \S*/best$")]),
]


@pytest.mark.parametrize("window, stages", PUBLISH_LINKS_WINDOWS, ids=[w[0] for w in PUBLISH_LINKS_WINDOWS])
def test_publish_links_interrupted_leaves_the_old_copy_and_is_redone(tmp_path, window, stages):
    latest = version(tmp_path / "latest", "epoch 2")
    best = version(tmp_path / "best", "epoch 1")
    with pytest.raises(Killed), killed_at(stages):
        publish_links(latest, best)
    assert says(best if best.exists() else tmp_path / "best.old") == {"epoch 1"}
    publish_links(latest, best)
    assert says(best) == {"epoch 2"} and (best / "config.json").stat().st_ino == (latest / "config.json").stat().st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best", "latest"]


WRITE_ATOMIC_WINDOWS = [
    ("opening the temporary", [("open", r"\.r\.json\.tmp None$")], "old"),
    ("the temporary written, not yet renamed", [("os.rename", r"\.r\.json\.tmp ")], "old"),
    ("renamed, the folder not yet flushed", [("os.rename", r"\.r\.json\.tmp "), ("open", r" None$")], "new"),
]


@pytest.mark.parametrize("window, stages, holds", WRITE_ATOMIC_WINDOWS, ids=[w[0] for w in WRITE_ATOMIC_WINDOWS])
def test_write_atomic_interrupted_leaves_a_whole_file(tmp_path, window, stages, holds):
    path = tmp_path / "r.json"
    write_atomic(path, "old")
    with pytest.raises(Killed), killed_at(stages):
        write_atomic(path, "new")
    assert path.read_text() == holds
    write_atomic(path, "newer")
    assert path.read_text() == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


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


def test_the_output_rule_checks_the_kind_of_place_whatever_overwrite_says(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.png").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(HfclsError, match=r"^--out \S*folder is a folder where a file goes"):
            check_output(tmp_path / "folder", overwrite)
        with pytest.raises(HfclsError, match=r"^--out \S*file.png is a file where a folder goes"):
            check_output(tmp_path / "file.png", overwrite, kind="folder")
        with pytest.raises(HfclsError, match="file.png is not a folder"):
            check_output(tmp_path / "file.png" / "x.png", overwrite)
    with pytest.raises(HfclsError, match=r"file.png is a file already; nothing was written: .*--overwrite"):
        check_output(tmp_path / "file.png")
    check_output(tmp_path / "file.png", overwrite=True)
    check_output(tmp_path / "folder" / "new.png")
    check_output(tmp_path / "file.png", kind="stem")  # OUT of OUT-<hash>: the names are checked when known
    assert (tmp_path / "file.png").read_text() == "mine"


def test_a_link_where_hfcls_keeps_its_own_file_is_refused_never_followed(tmp_path):
    victim = tmp_path / "notes.txt"
    victim.write_text("mine")
    (tmp_path / "metrics.jsonl").symlink_to(victim)
    with pytest.raises(HfclsError, match=r"metrics.jsonl is a symbolic link \(to \S*notes.txt\)"):
        append_line(tmp_path / "metrics.jsonl", "{}")
    (tmp_path / ".r.json.tmp").symlink_to(victim)  # a temporary left by a killed write is replaced, not followed
    write_atomic(tmp_path / "r.json", "new")
    assert victim.read_text() == "mine" and (tmp_path / "r.json").read_text() == "new"


def test_replacing_keeps_the_earlier_file_when_the_write_fails(tmp_path):
    path = tmp_path / "curves.png"
    path.write_text("earlier")
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        assert tmp.suffix == ".png"  # writers pick the format from it
        tmp.write_text("half")
        raise RuntimeError("disk gone")
    assert path.read_text() == "earlier" and sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]
    with replacing(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]


def test_a_library_error_is_traced_to_the_full_disk_it_hit(tmp_path):
    # safetensors words the OS error its own way; the errno is read out of it.
    cause = storage_cause(
        Exception("Error while serializing: I/O error: No space left on device (os error 28)"), tmp_path
    )
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
        with pytest.raises(
            HfclsError,
            match=r"^--out x: cannot write in .*disk \(No space left on device\); "
            r"nothing was done",
        ):
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
