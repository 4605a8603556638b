"""`hfcls-push FOLDER REPO_ID`: upload a Hugging Face folder with a generated model card.

The card (README.md) carries the run's validation metrics (metrics.jsonl), its
recipe, the class names, a `transformers.pipeline` snippet and the hfcls
version; they are read from the work dir the folder sits in (`latest/`, `best/`
or `publish/<name>-<hash>/` inside it), or from --work-dir. `--dry-run` writes
the exact folder that would be uploaded and sends nothing. `train.push_to_hub:
REPO_ID` in a recipe pushes the published model at the end of training.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import huggingface_hub
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError

import hfcls
from hfcls.errors import HfclsError, cli_entry
from hfcls.logs import read_jsonl, setup_logging
from hfcls.recipe import load_recipe

# What a failed request raises: HTTP errors, and connection errors (OSError or the HTTP client's own).
NETWORK_ERRORS = (OSError, HfHubHTTPError, huggingface_hub.errors.HTTPError)


# ----------------------------------------------------------------------------- the run behind a folder


def find_work_dir(folder: Path) -> Path | None:
    """The work dir holding `folder`: the nearest of it and two parents with a recipe.yaml."""
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / "recipe.yaml").is_file():
            return candidate
    return None


def evaluation_row(work_dir: Path, folder: Path) -> dict | None:
    """The metrics.jsonl row that describes the folder's weights: the best epoch for best/,
    else the last evaluation (latest/ and published folders hold the final weights)."""
    path = work_dir / "metrics.jsonl"
    rows = [row for row in read_jsonl(path) if any(k.startswith("val_") for k in row)] if path.is_file() else []
    if not rows:
        return None
    evaluation = load_recipe(work_dir / "recipe.yaml").evaluation
    key = f"val_{evaluation.save_best}"
    if folder.name == "best" and all(key in row for row in rows):
        pick = max if evaluation.rule == "greater" else min
        return pick(rows, key=lambda row: row[key])
    return rows[-1]


# ----------------------------------------------------------------------------- the model card


def model_card(folder: Path, repo_id: str, work_dir: Path | None) -> str:
    config = json.loads((folder / "config.json").read_text())
    names = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    parts = [
        "---\nlibrary_name: transformers\npipeline_tag: image-classification\ntags:\n- hfcls\n"
        "- image-classification\n---\n",
        f"# {repo_id.split('/')[-1]}\n",
        f"An image classifier (`{config['model_type']}`, {len(names)} classes) trained with "
        f"hfcls {hfcls.__version__}.\n",
        metrics_section(folder, work_dir),
        usage_section(repo_id, config["model_type"]),
        "## Classes\n\nIn label-index order: " + ", ".join(f"`{name}`" for name in names) + "\n",
    ]
    if work_dir is not None:
        recipe = (work_dir / "recipe.yaml").read_text()
        parts.append(f"## Training recipe\n\nThe resolved recipe, exactly as it ran:\n\n```yaml\n{recipe}```\n")
    return "\n".join(parts)


def metrics_section(folder: Path, work_dir: Path | None) -> str:
    row = evaluation_row(work_dir, folder) if work_dir is not None else None
    if row is None:
        return "## Evaluation\n\nNo validation metrics were recorded for this model.\n"
    lines = [f"## Evaluation\n\nValidation set, epoch {row['epoch']} (accuracies in %):\n",
             "| metric | value |", "| --- | --- |"]
    lines += [f"| {key.removeprefix('val_')} | {value:.4g} |" for key, value in row.items() if key.startswith("val_")]
    return "\n".join(lines) + "\n"


def usage_section(repo_id: str, model_type: str) -> str:
    import hfcls.modeling

    custom = model_type in {config.model_type for config in hfcls.modeling.CUSTOM_MODELS}
    register = "import hfcls.modeling  # registers hfcls's own architectures, such as this one\n" if custom else ""
    return ("## Usage\n\n```python\n" + register + "from transformers import pipeline\n\n"
            f'classifier = pipeline("image-classification", model="{repo_id}")\n'
            'print(classifier("image.jpg"))\n```\n')


# ----------------------------------------------------------------------------- staging and upload


def stage(folder, repo_id: str, out: Path, work_dir=None) -> Path:
    """Write the folder as it would be uploaded: the model files plus README.md."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise HfclsError(f"{folder} is not a Hugging Face folder (no config.json); push latest/, best/ "
                         "or a folder made by hfcls-publish")
    work_dir = Path(work_dir) if work_dir is not None else find_work_dir(folder)
    if work_dir is not None and not (work_dir / "recipe.yaml").is_file():
        raise HfclsError(f"--work-dir {work_dir} has no recipe.yaml; pass the run's work dir")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for file in folder.iterdir():
        if file.is_file() and file.name != "README.md":
            shutil.copy2(file, out / file.name)
    (out / "README.md").write_text(model_card(folder, repo_id, work_dir))
    return out


def check_can_upload() -> None:
    if constants.is_offline_mode():
        raise HfclsError("cannot push: HF_HUB_OFFLINE is set; unset it (or use --dry-run to write the folder only)")
    if huggingface_hub.get_token() is None:
        raise HfclsError("cannot push: no Hugging Face token; run `hf auth login` or set HF_TOKEN")


def push(folder, repo_id: str, private: bool = False, revision: str | None = None,
         commit_message: str | None = None, work_dir=None) -> str:
    """create_repo + upload_folder of the staged folder; return the commit URL."""
    check_can_upload()
    api = HfApi()
    with tempfile.TemporaryDirectory() as tmp:
        staged = stage(folder, repo_id, Path(tmp) / "upload", work_dir)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision is not None:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            commit = api.upload_folder(repo_id=repo_id, folder_path=staged, revision=revision,
                                       commit_message=commit_message or f"Upload {Path(folder).name} with hfcls")
        except NETWORK_ERRORS as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise HfclsError(f"pushing to {repo_id} failed: {first_line}") from None
    return commit.commit_url


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="hfcls-push", description=__doc__.splitlines()[0])
    parser.add_argument("folder", metavar="FOLDER", help="a Hugging Face folder (latest/, best/, a published one)")
    parser.add_argument("repo_id", metavar="REPO_ID", help="user/model on the Hub")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--revision", help="push to this branch (created if needed)")
    parser.add_argument("--commit-message")
    parser.add_argument("--work-dir", help="the run the metrics and recipe come from (default: found above FOLDER)")
    parser.add_argument("--dry-run", action="store_true", help="write the upload folder and card, send nothing")
    parser.add_argument("--out", help="where --dry-run writes (default: FOLDER-hub beside FOLDER)")
    return parser.parse_args(argv)


@cli_entry
def cli(argv=None):
    args = parse_args(argv)
    setup_logging(None, is_main=True)  # results on stdout; library progress bars off
    folder = Path(args.folder)
    if args.dry_run:
        out = Path(args.out) if args.out else folder.with_name(folder.name + "-hub")
        staged = stage(folder, args.repo_id, out, args.work_dir)
        files = ", ".join(sorted(p.name for p in staged.iterdir()))
        visibility = "private" if args.private else "public"
        print(f"dry run: wrote {staged} ({files}); would upload it to {visibility} repo {args.repo_id}")
        return
    print(push(folder, args.repo_id, args.private, args.revision, args.commit_message, args.work_dir))


if __name__ == "__main__":
    cli()
