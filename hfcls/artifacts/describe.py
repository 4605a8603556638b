"""What an artifact says about itself: its model config (architecture, class names), its eval
preprocessing, its hfcls metadata, and the recipe of the run it came from. A bare weights file says
nothing, and takes all of it from the recipe it was trained with.
"""

from __future__ import annotations

import json
from pathlib import Path

from hfcls.artifacts.checkpoint import checked_state
from hfcls.artifacts.export import CONFIG_FILE, PREPROCESSOR_FILE, RECORD_FILE, image_processor, processor_from_dict
from hfcls.artifacts.metadata import parse_metadata
from hfcls.artifacts.run_dir import METADATA_KEY, RECIPE_FILE
from hfcls.artifacts.weights import Artifact, inspect_artifact, trusts_remote_code
from hfcls.errors import HfclsError
from hfcls.labels import check_label_maps
from hfcls.timm_models import check_label_names, is_timm


def model_config(path, recipe=None):
    """The artifact's model config (architecture and class names); a bare weights file takes the recipe's."""
    from transformers import CONFIG_MAPPING, AutoConfig

    import hfcls.modeling  # noqa: F401  hfcls's own architectures, registered with the Auto classes
    from hfcls.models import architecture_config, remote_code_refused

    artifact = inspect_artifact(path)
    if artifact.kind in ("hf", "checkpoint"):
        folder = described_folder(artifact)
        with remote_code_refused(folder, str(artifact)):
            config = AutoConfig.from_pretrained(folder, trust_remote_code=trusts_remote_code(recipe))
        check_label_maps(config, f"{folder / CONFIG_FILE}")
        if is_timm(config):
            check_label_names(config, folder / CONFIG_FILE)
        return config
    metadata = own_metadata(artifact, recipe)
    if metadata is not None:
        config = metadata["config"]
        if config["model_type"] not in CONFIG_MAPPING:
            raise HfclsError(
                f"{artifact}: model_type {config['model_type']!r} is not registered with transformers; "
                "import the module that defines it first (recipe key custom_imports)"
            )
        try:
            # from_dict, as from_pretrained reads a config.json: a timm config names its classes in label_names
            config = CONFIG_MAPPING[config["model_type"]].from_dict(config)
        except (TypeError, ValueError, KeyError) as error:
            raise HfclsError(
                f"{artifact}: the model config in its metadata cannot be read ({error}); the file is "
                "damaged or was altered: publish (or export) it again"
            ) from None
        check_label_maps(config, str(artifact))
        named = [config.id2label[i] for i in range(config.num_labels)]
        if metadata.get("class_names", named) != named:
            raise HfclsError(
                f"{artifact}: the class names of its metadata and of its config differ; the file "
                "was altered: publish it again"
            )
        return config
    return architecture_config(weights_recipe(artifact, recipe).model, recipe_class_names(recipe))


def preprocessor(path, recipe=None):
    """The artifact's eval preprocessing as a BitImageProcessor; a bare weights file takes the recipe's."""
    artifact = inspect_artifact(path)
    if artifact.kind in ("hf", "checkpoint"):
        return processor_from_dict(json.loads((described_folder(artifact) / PREPROCESSOR_FILE).read_text()))
    metadata = own_metadata(artifact, recipe)
    if metadata is not None:
        return processor_from_dict(metadata["preprocessor"])
    return image_processor(weights_recipe(artifact, recipe).data)


def described_folder(artifact: Artifact) -> Path:
    """A folder artifact, which holds its config.json and preprocessor_config.json."""
    missing = [name for name in (CONFIG_FILE, PREPROCESSOR_FILE) if not (artifact.path / name).is_file()]
    if missing:
        raise HfclsError(f"{artifact} has no {' or '.join(missing)}; pass a complete checkpoint or export")
    return artifact.path


def weights_recipe(artifact: Artifact, recipe):
    """The recipe a file without a description of its own is read with."""
    if recipe is None:
        raise HfclsError(
            f"{artifact} holds weights only; pass the recipe it was trained with (its model section "
            "gives the architecture, its data the class names)"
        )
    return recipe


def own_metadata(artifact: Artifact, recipe=None) -> dict | None:
    """What a file says about itself: an ONNX graph's metadata, a published file's hfcls metadata
    (required unless a recipe stands in), or that of any other .safetensors file that has it (a
    published file renamed), which then names its classes rather than the recipe."""
    if artifact.kind == "onnx":
        from hfcls.artifacts.onnx_model import onnx_metadata

        return onnx_metadata(artifact.path)
    if artifact.kind not in ("published", "weights"):
        return None
    return safetensors_metadata(artifact.path, required=artifact.kind == "published" and recipe is None)


def safetensors_metadata(path, required: bool = True) -> dict | None:
    """The `hfcls` metadata of a published file: config, class_names, preprocessor, hfcls_version
    (None for a hash-named file without it, unless `required`)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except Exception as error:
        raise HfclsError(f"cannot read {path} ({error}); the file is damaged or not safetensors") from None
    if raw is None and required:
        raise HfclsError(
            f"{path} has no hfcls metadata (model config); pass the recipe it was trained with, "
            "or publish it with hfcls-publish"
        )
    return None if raw is None else parse_metadata(raw, path)


def training_record(path) -> dict | None:
    """Which weights an artifact holds, as its run recorded them beside the weights: {"epoch", "step",
    "metrics" (validation, without the val_ prefix)} from an export's training_record.json or a
    checkpoint's hfcls_state.json; None for what records none (a published or bare .safetensors
    file, an .onnx graph, an export written before hfcls kept records)."""
    artifact = inspect_artifact(path)
    if artifact.kind == "checkpoint":
        state = checked_state(artifact.path)
        metrics = {key.removeprefix("val_"): value for key, value in state.row.items() if key.startswith("val_")}
        return {"epoch": state.epoch, "step": state.step, "metrics": metrics}
    file = artifact.path / RECORD_FILE
    if artifact.kind != "hf" or not file.is_file():
        return None
    try:
        record = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise HfclsError(f"{file} is not readable JSON ({error}); the export is damaged: export it again") from None
    if not (
        isinstance(record, dict)
        and all(isinstance(record.get(key), int) and record[key] >= 0 for key in ("epoch", "step"))
        and isinstance(record.get("metrics"), dict)
        and all(isinstance(value, (int, float)) for value in record["metrics"].values())
    ):
        raise HfclsError(
            f"{file} does not hold an epoch, a step and numeric metrics; the export is damaged: export it again"
        )
    return record


def run_recipe(artifact):
    """The recipe.yaml of the run the artifact belongs to, or None for a file on its own."""
    from hfcls.recipe import load_recipe

    work_dir = inspect_artifact(artifact).work_dir
    return load_recipe(work_dir / RECIPE_FILE) if work_dir is not None else None


def recipe_class_names(recipe) -> list:
    """The class names a recipe trains on: those of its train split."""
    from hfcls.data.build import build_datasets, class_names

    if recipe.data.train is None:
        raise HfclsError("the recipe has no data.train source; hfcls takes a model's class names from it")
    return class_names(build_datasets(recipe.data, recipe.seed, ("train",))["train"])
