"""Push a model to the Hugging Face Hub with a generated model card.

The card (README.md) is built with huggingface_hub's ModelCard. Its front matter is what the Hub reads:
a `model-index` with every metric the run evaluated on its validation split (top-k accuracies, and
precision/recall/F1 when evaluated; mAP, CP, CR, CF1, OP, OR, OF1 for a multi-label model) as
fractions, with the task and the dataset (type, name, config, split); `base_model` (model.pretrained,
a Hub id or a folder of the Hub's cache); `pipeline_tag: image-classification`, `library_name`, tags;
`datasets` (a hub source), `license` (train.license) and a widget example: the first validation image,
staged beside the model as example.png. Its text carries the same metrics, the recipe, the class
names, a `transformers.pipeline` snippet and the hfcls version. The metrics are a plain dict
(`card_metrics`: the training record beside the weights, hfcls.artifacts.describe.training_record,
which cannot describe other weights as the last readable line of metrics.jsonl can) and the recipe comes from the work dir the
artifact sits in (`hfcls.artifacts.run_dir.work_dir_of`), or from `work_dir`. Any artifact the reader
knows can be pushed: a Hugging Face folder is copied as it is, anything else is written as one first.
`stage` writes the exact folder that would be uploaded. `train.push_to_hub: REPO_ID` in a recipe pushes
the published model at the end of training.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import huggingface_hub
from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError

from hfcls.artifacts.describe import preprocessor, training_record
from hfcls.artifacts.export import CONFIG_FILE, save_hf_folder
from hfcls.artifacts.loading import load_model
from hfcls.artifacts.run_dir import RECIPE_FILE, run_owning
from hfcls.artifacts.space import HFCLS_REQUIREMENT, check_repo_id, space_files, stage_space
from hfcls.artifacts.weights import inspect_artifact
from hfcls.errors import HfclsError
from hfcls.files import check_output, folder_written
from hfcls.labels import MULTI_LABEL
from hfcls.recipe import load_recipe
from hfcls.version import __version__

# What a failed request raises: HTTP errors, and connection errors (OSError or the HTTP client's own).
NETWORK_ERRORS = (OSError, HfHubHTTPError, huggingface_hub.errors.HTTPError)


# ----------------------------------------------------------------------------- the run behind a model


def card_metrics(folder: Path) -> dict | None:
    """What the card reports: the validation metrics of the staged weights as a plain dict, {"epoch": E,
    "accuracy_top1": 91.2, "loss": 0.3, ...} (as logged: percentages), from the training record beside
    them; None when it records none."""
    record = training_record(folder)
    if record is None or not record["metrics"]:
        return None
    return {"epoch": record["epoch"], **record["metrics"]}


# ----------------------------------------------------------------------------- the model card


def model_card(
    folder: Path, repo_id: str, work_dir: Path | None, metrics: dict | None, example: str | None = None
) -> str:
    """README.md: front matter the Hub reads (huggingface_hub's ModelCardData), then the text for people.
    `metrics`: card_metrics' dict; `example`: the file name of the widget image staged beside the model."""
    from huggingface_hub import ModelCard

    config = json.loads((folder / CONFIG_FILE).read_text())
    if "label_names" in config:  # a timm model's config.json names its classes so (TimmWrapperConfig)
        names = list(config["label_names"])
    else:
        names = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    recipe = load_recipe(work_dir / RECIPE_FILE) if work_dir is not None else None
    parts = [
        f"# {repo_id.split('/')[-1]}\n",
        f"An image classifier (`{config['model_type']}`, {len(names)} classes) trained with hfcls {__version__}.\n",
        metrics_section(metrics),
        usage_section(repo_id, config),
        "## Classes\n\nIn label-index order: " + ", ".join(f"`{name}`" for name in names) + "\n",
    ]
    if work_dir is not None:
        text = (work_dir / RECIPE_FILE).read_text()
        parts.append(f"## Training recipe\n\nThe resolved recipe, exactly as it ran:\n\n```yaml\n{text}```\n")
    data = card_data(repo_id, recipe, metrics, config, example)
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(parts)))


def card_data(repo_id: str, recipe, metrics: dict | None, config: dict | None = None, example: str | None = None):
    """The card's metadata. `metrics` is a plain dict of the validation metrics ({"accuracy_top1": 91.2, ...},
    percentages as hfcls logs them); `config` the model's config.json, for its architecture and problem type."""
    from huggingface_hub import ModelCardData

    config = config or {}
    multi_label = config.get("problem_type") == MULTI_LABEL
    results = eval_results(recipe, metrics or {}, multi_label)
    source = _evaluated_source(recipe)
    hub_name = source.get("name") if source.get("type") == "hub" else None
    tags = ["hfcls", "image-classification", config.get("model_type"), "multi-label" if multi_label else None]
    widget = [{"src": f"https://huggingface.co/{repo_id}/resolve/main/{example}", "example_title": "example"}]
    return ModelCardData(
        library_name="transformers",
        pipeline_tag="image-classification",
        tags=[tag for tag in tags if tag],
        license=recipe.train.license if recipe is not None else None,
        base_model=base_model_id(recipe.model.pretrained) if recipe is not None else None,
        datasets=[hub_name] if hub_name else None,
        model_name=repo_id.split("/")[-1] if results else None,
        eval_results=results or None,
        widget=widget if example else None,
    )


# hfcls's metric names -> (the Hub's metric type, the name people read). Percentages become fractions.
CARD_METRICS = {
    "accuracy_top": ("accuracy", "top-{k} accuracy"),
    "precision": ("precision", "precision"),
    "recall": ("recall", "recall"),
    "f1_score": ("f1", "F1"),
    "mAP": ("mAP", "mAP"),
    "CP": ("precision", "CP (per-class precision)"),
    "CR": ("recall", "CR (per-class recall)"),
    "CF1": ("f1", "CF1 (per-class F1)"),
    "OP": ("precision", "OP (overall precision)"),
    "OR": ("recall", "OR (overall recall)"),
    "OF1": ("f1", "OF1 (overall F1)"),
}
# What follows a metric's name: the averaging (single-label), the threshold or the top-k rule.
CARD_SUFFIX = re.compile(r"(?P<average>_micro)?(?:_thr-(?P<thr>[\d.]+)|_top(?P<top>\d+))?")


def eval_results(recipe, metrics: dict, multi_label: bool) -> list:
    """The model-index entries: every number in `metrics` that CARD_METRICS names (the loss, supports
    and per-class lists stay in the text), on the task and the dataset the metrics came from."""
    from huggingface_hub import EvalResult

    source = _evaluated_source(recipe)
    hub_name = source.get("name") if source.get("type") == "hub" else None
    place = {
        "task_type": "image-classification",
        "task_name": "Multi-label Image Classification" if multi_label else "Image Classification",
        "dataset_type": hub_name or source.get("type", "custom"),
        "dataset_name": hub_name
        or Path(str(source.get("path") or source.get("root") or source.get("type", "custom"))).name,
        "dataset_config": source.get("config") if hub_name else None,
        "dataset_split": source.get("split", "validation") if hub_name else "validation",
    }
    results = []
    for key, value in metrics.items():
        named = card_metric(key)
        if named is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            metric_type, metric_name = named
            results.append(
                EvalResult(
                    metric_type=metric_type, metric_name=metric_name, metric_value=round(value / 100, 6), **place
                )
            )
    return results


def card_metric(key: str) -> tuple | None:
    """(metric type, readable name) of an hfcls metric key ('accuracy_top1', 'precision_micro', 'CF1_thr-0.30',
    'OP_top3'), or None for what the model-index does not carry."""
    if key.startswith("accuracy_top") and key.removeprefix("accuracy_top").isdigit():
        return "accuracy", f"top-{key.removeprefix('accuracy_top')} accuracy"
    for name, (metric_type, readable) in CARD_METRICS.items():
        if name == "accuracy_top" or not key.startswith(name):
            continue
        rule = CARD_SUFFIX.fullmatch(key[len(name) :])
        if rule is None:
            continue
        details = [
            "micro" if rule["average"] else "macro" if name in ("precision", "recall", "f1_score") else None,
            f"threshold {rule['thr']}" if rule["thr"] else None,
            f"top-{rule['top']}" if rule["top"] else None,
        ]
        details = [d for d in details if d]
        return metric_type, readable + (f" ({', '.join(details)})" if details else "")
    return None


def base_model_id(pretrained: str | None) -> str | None:
    """The Hub id of the model a fine-tune started from: model.pretrained itself, or for a folder of the
    Hub's cache (.../models--org--name/snapshots/<commit>) the id it was downloaded as; None for other folders."""
    if not pretrained:
        return None
    path = Path(pretrained)
    cached = next((part for part in path.parts if part.startswith("models--")), None)
    if cached is not None and path.exists():
        return cached.removeprefix("models--").replace("--", "/")
    return None if path.exists() else pretrained


def card_metadata(folder: Path) -> str:
    """The YAML front matter of a staged folder's model card, as the Hub parses it."""
    from huggingface_hub import ModelCard

    return ModelCard.load(Path(folder) / "README.md").data.to_yaml() + "\n"


def _evaluated_source(recipe) -> dict:
    """The data source the card's metrics come from: data.val, else the train split it was held out of."""
    if recipe is None:
        return {}
    return dict(recipe.data.val or recipe.data.train or {})


def metrics_section(metrics: dict | None) -> str:
    if metrics is None:
        return "## Evaluation\n\nNo validation metrics were recorded for this model.\n"
    lines = [
        f"## Evaluation\n\nValidation set, epoch {metrics['epoch']} (scores in %):\n",
        "| metric | value |",
        "| --- | --- |",
    ]
    lines += [
        f"| {key} | {value:.4g} |"
        for key, value in metrics.items()
        if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
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


def stage(
    source,
    repo_id: str,
    out: Path,
    work_dir=None,
    overwrite: bool = False,
    space_id: str | None = None,
    space_requirement: str = HFCLS_REQUIREMENT,
) -> Path:
    """Write the folder as it would be uploaded, into `out` (new or empty, or replaced with `overwrite`):
    the model files, README.md and, for a model of a run, the widget's example image. With `space_id`,
    the Space that runs the demo app on it too, into `space_folder(out)` (both targets checked first)."""
    artifact = inspect_artifact(source)
    work_dir = Path(work_dir) if work_dir is not None else artifact.work_dir
    if work_dir is not None and not (work_dir / RECIPE_FILE).is_file():
        raise HfclsError(f"work_dir {work_dir} has no {RECIPE_FILE}; pass the run's work dir", param="work_dir")
    out = Path(out)
    check_stage_target(out, artifact.path, overwrite)
    if space_id is not None:
        check_repo_id(space_id, "space_id")
        check_stage_target(space_folder(out), artifact.path, overwrite)
        space_files(repo_id, space_id, space_requirement)  # what it needs (gradio's version), before any writing
    with folder_written(out, f"{out}", "nothing there was changed; free some space or choose another --out") as tmp:
        if artifact.kind == "hf":
            for file in artifact.path.iterdir():
                if file.is_file() and file.name != "README.md":
                    shutil.copy2(file, tmp / file.name)
        else:
            save_hf_folder(load_model(artifact), preprocessor(artifact), tmp, record=training_record(artifact))
        recipe = load_recipe(work_dir / RECIPE_FILE) if work_dir is not None else None
        example = write_example(recipe, tmp) if recipe is not None else None
        metrics = card_metrics(tmp)
        (tmp / "README.md").write_text(model_card(tmp, repo_id, work_dir, metrics, example))
    if space_id is not None:
        stage_space(repo_id, space_id, space_folder(out), overwrite, space_requirement)
    return out


def space_folder(out: Path) -> Path:
    """Where `stage` writes the Space beside the model's folder."""
    return Path(out).with_name(Path(out).name + "-space")


EXAMPLE_FILE = "example.png"


def write_example(recipe, folder: Path) -> str | None:
    """The first image of the split the card's metrics come from, as `folder`/example.png (the
    widget's picture); None when the recipe has no such split."""
    import datasets
    from PIL import Image

    from hfcls.data.build import build_datasets
    from hfcls.data.decode import decode

    split = "val" if recipe.data.val is not None or recipe.data.train_val_split else "train"
    if split == "train" and recipe.data.train is None:
        return None
    dataset = build_datasets(recipe.data, recipe.seed, tuple(dict.fromkeys(("train", split))))[split]
    first = next(iter(dataset.cast_column("image", datasets.Image(decode=False)).take(1)))
    pixels = decode(first["image"], recipe.data.to_rgb)
    Image.fromarray(pixels.permute(1, 2, 0).numpy().squeeze()).save(folder / EXAMPLE_FILE)
    return EXAMPLE_FILE


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
    space_id: str | None = None,
    space_requirement: str = HFCLS_REQUIREMENT,
) -> list:
    """create_repo + upload_folder of the staged folder, and with `space_id` of the Space that runs the demo
    app on it (hfcls.artifacts.space); return the commit URLs."""
    if space_id is not None:
        check_repo_id(space_id, "space_id")
    check_can_upload()
    api = HfApi()
    message = commit_message or f"Upload {Path(folder).name} with hfcls"
    with tempfile.TemporaryDirectory() as tmp:
        staged = stage(folder, repo_id, Path(tmp) / "upload", work_dir, False, space_id, space_requirement)
        space = space_folder(staged) if space_id else None
        with network_errors(repo_id):
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision is not None:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            commits = [
                api.upload_folder(repo_id=repo_id, folder_path=staged, revision=revision, commit_message=message)
            ]
        if space is not None:
            with network_errors(space_id):
                api.create_repo(space_id, private=private, exist_ok=True, repo_type="space", space_sdk="gradio")
                commits.append(
                    api.upload_folder(repo_id=space_id, folder_path=space, repo_type="space", commit_message=message)
                )
    return [commit.commit_url for commit in commits]


@contextmanager
def network_errors(repo_id: str):
    """A failed request as one line naming the repo."""
    try:
        yield
    except NETWORK_ERRORS as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise HfclsError(f"pushing to {repo_id} failed: {first_line}") from None
