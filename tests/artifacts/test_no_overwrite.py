"""The write side never deletes what a user has: hfcls-push --dry-run --out and hfcls-publish refuse what is
there (the model itself and a training run even with --overwrite); --overwrite replaces whole."""

import shutil

import pytest

from hfcls.artifacts.hub import stage
from hfcls.artifacts.publish import publish
from hfcls.errors import HfclsError


@pytest.fixture
def run(two_epoch_run, tmp_path):
    """A copy of a finished 2-epoch run: these tests point outputs into it."""
    return shutil.copytree(two_epoch_run, tmp_path / "run")


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


OUT_IN_A_RUN = {
    "the model itself": "best",
    "its work dir": ".",
    "its checkpoints": "checkpoints",
    "a checkpoint": "checkpoints/epoch_1",
    "another export": "latest",
    "a new folder in publish/": "publish/x",
}


@pytest.mark.parametrize("out", OUT_IN_A_RUN.values(), ids=OUT_IN_A_RUN)
def test_staging_never_replaces_the_model_or_its_run_even_with_overwrite(run, out):
    before = snapshot(run)
    for overwrite in (False, True):
        with pytest.raises(
            HfclsError,
            match=r"^out .* (overlaps the model .*best being staged|is part of the "
            r"training run in .*run); nothing was written",
        ):
            stage(run / "best", "me/tiny", run / out, overwrite=overwrite)
    assert snapshot(run) == before
    # A new name beside the run's own files is fine: the default, MODEL-hub.
    stage(run / "best", "me/tiny", run / "best-hub")
    stage(run / "best", "me/tiny", run / "best-hub", overwrite=True)


def test_staging_into_another_run_is_refused_even_with_overwrite(run, two_epoch_run, tmp_path):
    other = shutil.copytree(two_epoch_run, tmp_path / "other")
    before = snapshot(other)
    with pytest.raises(
        HfclsError,
        match=r"is part of the training run in .*other; nothing was written, and "
        "--overwrite never replaces a run's files",
    ):
        stage(run / "best", "me/tiny", other, overwrite=True)
    assert snapshot(other) == before


def test_overwrite_replaces_an_earlier_staging_whole(run, tmp_path):
    out = stage(run / "latest", "me/first", tmp_path / "staged")
    (out / "stale.txt").write_text("from an earlier attempt")
    with pytest.raises(HfclsError, match="is a non-empty folder already; nothing was written"):
        stage(run / "best", "me/second", out)
    assert "me/first" in (out / "README.md").read_text()
    stage(run / "best", "me/second", out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "example.png",
        "model.safetensors",
        "preprocessor_config.json",
        "training_record.json",  # which weights these are: epoch, step, validation metrics
    ]
    assert "me/second" in (out / "README.md").read_text()
    assert (out / "model.safetensors").read_bytes() == (run / "best" / "model.safetensors").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "staged"]  # no temporary left


def test_publishing_again_is_refused_unless_overwrite_which_rewrites_the_same_bytes(run, tmp_path):
    first = publish(run / "best", tmp_path / "release" / "tiny")
    before = snapshot(tmp_path / "release")
    with pytest.raises(HfclsError, match=r"^out: the published .*tiny-\w{8}\.safetensors is a file already"):
        publish(run / "best", tmp_path / "release" / "tiny")  # the same weights: the same name
    assert snapshot(tmp_path / "release") == before
    assert publish(run / "best", tmp_path / "release" / "tiny", overwrite=True) == first
    assert snapshot(tmp_path / "release") == before
    # Only the folder left (the file removed by hand): refused as well, a file of the user's in it kept.
    first.unlink()
    (first.with_suffix("") / "NOTES.md").write_text("mine")
    with pytest.raises(HfclsError, match=r"^out: the published .*tiny-\w{8} is a non-empty folder already"):
        publish(run / "best", tmp_path / "release" / "tiny")
    assert (first.with_suffix("") / "NOTES.md").read_text() == "mine" and not first.exists()
    assert sorted(p.name for p in (tmp_path / "release").iterdir()) == [first.with_suffix("").name]
