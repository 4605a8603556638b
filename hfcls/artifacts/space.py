"""A Gradio Space to go with a pushed model (`hfcls-push MODEL REPO_ID --space SPACE_ID`).

The Space is a repo of its own (repo_type "space") holding three files:

  app.py            downloads the model repo (huggingface_hub.snapshot_download) and serves hfcls's demo
                    page on it (hfcls.app.serve.load_page: what `hfcls-app` serves), the model's example
                    image offered under the upload; Spaces run `python app.py`, their environment
                    choosing the address and port
  requirements.txt  hfcls with the app and explain extras (`requirement`: another specifier, such as
                    `hfcls[app,explain] @ git+https://...`, where hfcls comes from elsewhere)
  README.md         the Space's card: sdk gradio at the installed gradio's version, app_file, the model
                    it runs (`models`), tags
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hfcls.errors import HfclsError
from hfcls.extras import install_hint
from hfcls.files import check_new_output, publish_folder, storage_errors, temporary_folder
from hfcls.version import __version__

APP_FILE = "app.py"
REQUIREMENTS_FILE = "requirements.txt"
HFCLS_REQUIREMENT = f"hfcls[app,explain]=={__version__}"

APP = '''"""The demo of the model {model_repo}: hfcls's app (what `hfcls-app` serves), written by hfcls-push --space."""

from pathlib import Path

from huggingface_hub import snapshot_download

from hfcls.app.serve import load_page

MODEL_REPO = "{model_repo}"

model = Path(snapshot_download(MODEL_REPO))
example = model / "example.png"  # staged beside the model by hfcls-push, when it belongs to a run
demo = load_page(model, examples=example if example.is_file() else None, title=MODEL_REPO)

if __name__ == "__main__":
    demo.launch()  # the Space's environment sets the address and the port
'''


def check_repo_id(repo_id: str, param: str) -> None:
    """A Hub repo id is user/name (or org/name)."""
    owner, _, name = repo_id.partition("/")
    if not owner or not name or "/" in name:
        raise HfclsError(f"{param} {repo_id}: a Hub repo id is user/name, e.g. me/{repo_id or 'demo'}", param=param)


def space_files(model_repo: str, space_id: str, requirement: str = HFCLS_REQUIREMENT) -> dict:
    """{file name: text} of the Space that runs hfcls's demo app on `model_repo`."""
    from huggingface_hub import SpaceCard, SpaceCardData

    data = SpaceCardData(
        title=space_id.split("/")[-1],
        sdk="gradio",
        sdk_version=gradio_version(),
        app_file=APP_FILE,
        models=[model_repo],
        tags=["hfcls", "image-classification"],
    )
    card = SpaceCard(
        f"---\n{data.to_yaml()}\n---\n\n# {space_id.split('/')[-1]}\n\nTry [{model_repo}](https://huggingface.co/"
        f"{model_repo}) in the browser: upload or drop an image, or several at once for a CSV of the predictions.\n"
        "The app is hfcls's demo (`hfcls-app`), as `app.py` says.\n"
    )
    return {APP_FILE: APP.format(model_repo=model_repo), REQUIREMENTS_FILE: f"{requirement}\n", "README.md": str(card)}


def gradio_version() -> str:
    """The gradio this machine's app runs on: the Space's card asks the Hub for the same."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gradio")
    except PackageNotFoundError:
        raise HfclsError(
            f"a Space's card names the gradio version its app runs on, and gradio is not installed; {install_hint('app')}"
        ) from None


def stage_space(
    model_repo: str, space_id: str, out, overwrite: bool = False, requirement: str = HFCLS_REQUIREMENT
) -> Path:
    """Write the Space's files into `out` (new or empty, or replaced with `overwrite`), whole or not at all."""
    check_repo_id(model_repo, "repo_id")
    check_repo_id(space_id, "space_id")
    out = Path(out)
    check_new_output(out, overwrite, "space out", param="space_out")
    files = space_files(model_repo, space_id, requirement)
    tmp = temporary_folder(out)
    shutil.rmtree(tmp, ignore_errors=True)
    with storage_errors(
        str(out),
        out.parent,
        "nothing there was changed; free some space or choose another --out",
        cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True),
    ):
        tmp.mkdir(parents=True)
        for name, text in files.items():
            (tmp / name).write_text(text)
        publish_folder(tmp, out)
    return out
