"""Push a model to the Hugging Face Hub with a generated model card.

The card (README.md) is built with huggingface_hub's ModelCard: its front matter
has a `model-index` with the validation accuracies as fractions (what the Hub shows),
`base_model` (model.pretrained), `datasets` (a hub source) and `license`
(train.license). Its text carries the model's own validation metrics and epoch (its training
record, beside its weights: hfcls.artifacts.describe.training_record), its run's recipe, the
class names, a `transformers.pipeline` snippet and the hfcls version; the recipe is read from
the work dir the artifact sits in (found by `hfcls.artifacts.run_dir.work_dir_of`), or from
`work_dir`. Any artifact the reader knows can be pushed: a Hugging Face folder is copied as it
is, anything else is written as one first. `stage` writes the exact folder that would be
uploaded. `train.push_to_hub: REPO_ID` in a recipe pushes the published model
at the end of training.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import huggingface_hub
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError

from hfcls.artifacts.describe import preprocessor, training_record
from hfcls.artifacts.export import CONFIG_FILE, save_hf_folder
from hfcls.artifacts.loading import load_model
from hfcls.artifacts.run_dir import RECIPE_FILE, run_owning
from hfcls.artifacts.weights import inspect_artifact
from hfcls.errors import HfclsError
from hfcls.files import check_output, publish_folder, storage_errors, temporary_folder
from hfcls.recipe import load_recipe
from hfcls.version import __version__

# What a failed request raises: HTTP errors, and connection errors (OSError or the HTTP client's own).
NETWORK_ERRORS = (OSError, HfHubHTTPError, huggingface_hub.errors.HTTPError)


# ----------------------------------------------------------------------------- the run behind a model


def evaluation_row(folder: Path) -> dict | None:
    """The staged model's own validation metrics, in the form of its run's metrics.jsonl row (epoch,
    val_*): from the training record beside its weights, which cannot describe other weights (the
    last readable line of metrics.jsonl can); None when it records none."""
    record = training_record(folder)
    if record is None or not record["metrics"]:
        return None
    return {"epoch": record["epoch"], **{f"val_{key}": value for key, value in record["metrics"].items()}}


# ----------------------------------------------------------------------------- the model card


def model_card(folder: Path, repo_id: str, work_dir: Path | None) -> str:
    """README.md: front matter the Hub reads (huggingface_hub's ModelCardData: model-index with the
    validation accuracies as fractions, base_model, datasets, license), then the text for people."""
    from huggingface_hub import ModelCard

    config = json.loads((folder / CONFIG_FILE).read_text())
    names = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    recipe = load_recipe(work_dir / RECIPE_FILE) if work_dir is not None else None
    row = evaluation_row(folder)
    parts = [
        f"# {repo_id.split('/')[-1]}\n",
        f"An image classifier (`{config['model_type']}`, {len(names)} classes) trained with hfcls {__version__}.\n",
        metrics_section(row),
        usage_section(repo_id, config),
        "## Classes\n\nIn label-index order: " + ", ".join(f"`{name}`" for name in names) + "\n",
    ]
    if work_dir is not None:
        text = (work_dir / RECIPE_FILE).read_text()
        parts.append(f"## Training recipe\n\nThe resolved recipe, exactly as it ran:\n\n```yaml\n{text}```\n")
    data = card_data(repo_id, recipe, row)
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(parts)))


def card_data(repo_id: str, recipe, row: dict | None):
    from huggingface_hub import EvalResult, ModelCardData

    source = _evaluated_source(recipe)
    hub_name = source.get("name") if source.get("type") == "hub" else None
    dataset_name = hub_name or Path(str(source.get("path") or source.get("root") or source.get("type", "custom"))).name
    accuracies = sorted(
        (int(key.removeprefix("val_accuracy_top")), value)
        for key, value in (row or {}).items()
        if key.startswith("val_accuracy_top")
    )
    results = [
        EvalResult(
            task_type="image-classification",
            dataset_type=hub_name or source.get("type", "custom"),
            dataset_name=dataset_name,
            dataset_split="validation",
            metric_type="accuracy",
            metric_name=f"top-{k} accuracy",
            metric_value=round(value / 100, 6),
        )
        for k, value in accuracies
    ]  # metrics.jsonl holds percentages; the Hub reads fractions
    pretrained = recipe.model.pretrained if recipe is not None else None
    return ModelCardData(
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=["hfcls", "image-classification"],
        license=recipe.train.license if recipe is not None else None,
        base_model=pretrained if pretrained and not Path(pretrained).exists() else None,
        datasets=[hub_name] if hub_name else None,
        model_name=repo_id.split("/")[-1] if results else None,
        eval_results=results or None,
    )


def card_metadata(folder: Path) -> str:
    """The YAML front matter of a staged folder's model card, as the Hub parses it."""
    from huggingface_hub import ModelCard

    return ModelCard.load(Path(folder) / "README.md").data.to_yaml() + "\n"


def _evaluated_source(recipe) -> dict:
    """The data source the card's metrics come from: data.val, else the train split it was held out of."""
    if recipe is None:
        return {}
    return dict(recipe.data.val or recipe.data.train or {})


def metrics_section(row: dict | None) -> str:
    if row is None:
        return "## Evaluation\n\nNo validation metrics were recorded for this model.\n"
    lines = [
        f"## Evaluation\n\nValidation set, epoch {row['epoch']} (accuracies in %):\n",
        "| metric | value |",
        "| --- | --- |",
    ]
    lines += [f"| {key.removeprefix('val_')} | {value:.4g} |" for key, value in row.items() if key.startswith("val_")]
    return "\n".join(lines) + "\n"


def usage_section(repo_id: str, config: dict) -> str:
    """A pipeline snippet; hfcls's own architectures travel as code beside the weights (auto_map)."""
    remote = ", trust_remote_code=True" if "auto_map" in config else ""
    note = (
        "`trust_remote_code=True` runs the model's code shipped in this repo "
        f"({', '.join(sorted(set(v.split('.')[0] + '.py' for v in config['auto_map'].values())))}); "
        "hfcls itself is not needed.\n\n"
        if remote
        else ""
    )
    return (
        "## Usage\n\n" + note + "```python\nfrom transformers import pipeline\n\n"
        f'classifier = pipeline("image-classification", model="{repo_id}"{remote})\n'
        'print(classifier("image.jpg"))\n```\n'
    )


# ----------------------------------------------------------------------------- staging and upload


def stage(source, repo_id: str, out: Path, work_dir=None, overwrite: bool = False) -> Path:
    """Write the folder as it would be uploaded, into `out` (new or empty, or replaced with `overwrite`):
    the model files plus README.md."""
    artifact = inspect_artifact(source)
    work_dir = Path(work_dir) if work_dir is not None else artifact.work_dir
    if work_dir is not None and not (work_dir / RECIPE_FILE).is_file():
        raise HfclsError(f"work_dir {work_dir} has no {RECIPE_FILE}; pass the run's work dir", param="work_dir")
    out = Path(out)
    check_stage_target(out, artifact.path, overwrite)
    tmp = temporary_folder(out)
    shutil.rmtree(tmp, ignore_errors=True)
    with storage_errors(
        f"{out}",
        out.parent,
        "nothing there was changed; free some space or choose another --out",
        cleanup=lambda: shutil.rmtree(tmp, ignore_errors=True),
    ):
        if artifact.kind == "hf":
            tmp.mkdir(parents=True)
            for file in artifact.path.iterdir():
                if file.is_file() and file.name != "README.md":
                    shutil.copy2(file, tmp / file.name)
        else:
            save_hf_folder(load_model(artifact), preprocessor(artifact), tmp, record=training_record(artifact))
        (tmp / "README.md").write_text(model_card(tmp, repo_id, work_dir))
        publish_folder(tmp, out)
    return out


def check_stage_target(out: Path, source: Path, overwrite: bool) -> None:
    """`out` must be new or empty (or `overwrite`), and never the model itself or a training run."""
    here, model = out.resolve(), source.resolve()
    if here == model or model.is_relative_to(here) or here.is_relative_to(model):
        raise HfclsError(
            f"out {out} overlaps the model {source} being staged; nothing was written: choose a folder outside it",
            param="out",
        )
    run = run_owning(out)
    if run is not None:
        raise HfclsError(
            f"out {out} is part of the training run in {run}; nothing was written, and --overwrite "
            "never replaces a run's files: choose a new folder",
            param="out",
        )
    check_output(out, overwrite, kind="folder", what="out", param="out")


def check_can_upload() -> None:
    if constants.is_offline_mode():
        raise HfclsError("cannot push: HF_HUB_OFFLINE is set; unset it (or use --dry-run to write the folder only)")
    if huggingface_hub.get_token() is None:
        raise HfclsError("cannot push: no Hugging Face token; run `hf auth login` or set HF_TOKEN")


def push(
    folder,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    work_dir=None,
) -> str:
    """create_repo + upload_folder of the staged folder; return the commit URL."""
    check_can_upload()
    api = HfApi()
    with tempfile.TemporaryDirectory() as tmp:
        staged = stage(folder, repo_id, Path(tmp) / "upload", work_dir)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision is not None:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            commit = api.upload_folder(
                repo_id=repo_id,
                folder_path=staged,
                revision=revision,
                commit_message=commit_message or f"Upload {Path(folder).name} with hfcls",
            )
        except NETWORK_ERRORS as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise HfclsError(f"pushing to {repo_id} failed: {first_line}") from None
    return commit.commit_url
