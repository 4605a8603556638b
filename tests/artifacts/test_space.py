"""The Space hfcls-push --space writes: its card the Hub reads (huggingface_hub's SpaceCard), its requirements,
and its app.py, run offline on the pushed repo as snapshot_download leaves it in the Hub's cache, serving the
demo page that gives hfcls-demo's answer."""

import runpy
import shutil

import gradio as gr
import pytest
from huggingface_hub import SpaceCard, constants

from hfcls.artifacts.hub import space_folder, stage
from hfcls.errors import HfclsError
from hfcls.inference import classify_images
from hfcls.version import __version__


def test_the_space_runs_the_demo_app_on_the_pushed_repo(trained_digits, digits_dir, tmp_path, monkeypatch):
    _, work = trained_digits
    staged = stage(work / "best", "me/digits", tmp_path / "hub", space_id="me/digits-demo")
    space = space_folder(staged)
    assert sorted(p.name for p in space.iterdir()) == ["README.md", "app.py", "requirements.txt"]
    card = SpaceCard.load(space / "README.md").data
    assert (card.sdk, card.sdk_version, card.app_file, card.models) == (
        "gradio",
        gr.__version__,
        "app.py",
        ["me/digits"],
    )
    assert (space / "requirements.txt").read_text() == f"hfcls[app,explain]=={__version__}\n"
    # The model repo as snapshot_download leaves it in the Hub's cache: offline, app.py reads it from there.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--me--digits"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(staged, repo / "snapshots" / commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    app = runpy.run_path(str(space / "app.py"), run_name="space")  # a Space runs it as __main__: then it launches
    assert app["model"] == repo / "snapshots" / commit and isinstance(app["demo"], gr.Blocks)
    one_image = next(f.fn for f in app["demo"].fns.values() if isinstance(f.outputs[0], gr.Label))
    image = sorted((digits_dir / "val" / "5").glob("*.png"))[0]
    scores, message, _ = one_image({"path": str(image), "orig_name": image.name}, False)
    [(_, expected)] = classify_images(str(image), work / "best", num_workers=0)
    assert scores == {p["label"]: p["score"] for p in expected} and message == ""
    [examples] = [b for b in app["demo"].blocks.values() if isinstance(b, gr.Dataset)]  # the model's example.png
    assert len(examples.samples) == 1


def test_a_space_needs_a_repo_id_of_its_own(trained_digits, tmp_path):
    _, work = trained_digits
    with pytest.raises(HfclsError, match="^space_id demo: a Hub repo id is user/name"):
        stage(work / "best", "me/digits", tmp_path / "hub", space_id="demo")
    assert not list(tmp_path.iterdir())  # refused before anything was written
