"""Load model weights from any of the forms hfcls writes or reads.

For evaluation and inference (`load_classifier`, an exact match):

- a Hugging Face folder (`best/`, `latest/`): config.json + model.safetensors; self-describing;
- a training checkpoint folder (`checkpoints/epoch_N`): its model.safetensors holds the
  state dict; the architecture comes from the recipe, the class names from its data;
- a published `.safetensors` file, `<name>-<first 8 hex of sha256>.safetensors`: as above,
  after checking the file against the hash in its name.

For fine-tuning (`load_finetune_weights`, `--load-from`): any of those or a Hub
id; a classification head of another class count is re-initialised.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"  # in Hugging Face folders and Accelerate checkpoints alike


def checkpoint_kind(path) -> str:
    """'hf' (Hugging Face folder), 'training' (checkpoints/epoch_N) or 'safetensors' (a weights file)."""
    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return "hf"
        if (path / WEIGHTS).is_file():
            return "training"
        raise HfclsError(f"checkpoint folder {path} holds neither config.json (a best/ or latest/ export) "
                         "nor model.safetensors (a checkpoints/epoch_N folder)")
    if path.is_file() and path.suffix == ".safetensors":
        return "safetensors"
    if path.exists():
        raise HfclsError(f"checkpoint {path} is not a folder or a .safetensors file")
    raise HfclsError(f"checkpoint {path} does not exist; pass a best/ or latest/ folder, "
                     "a checkpoints/epoch_N folder or a .safetensors file")


def verify_hash_suffix(path) -> None:
    """A file named `<name>-<8 hex>.safetensors` must hash to those 8 hex; others are not checked."""
    from hfcls.publish import HASHED_NAME, verify_published

    if HASHED_NAME.search(Path(path).name):
        verify_published(path)


def load_classifier(checkpoint, recipe=None):
    """The model, in eval mode, with `config.id2label` naming its classes.

    A recipe is needed for the state-dict forms (training folders, .safetensors files).
    """
    from transformers import AutoModelForImageClassification

    kind = checkpoint_kind(checkpoint)
    if kind == "hf":
        return _load_hf_folder(Path(checkpoint)).eval()
    if recipe is None:
        raise HfclsError(f"checkpoint {checkpoint} holds weights only; pass the recipe it was trained with "
                         "(its model section gives the architecture, its data the class names)")
    weights = Path(checkpoint) / WEIGHTS if kind == "training" else Path(checkpoint)
    if kind == "safetensors":
        verify_hash_suffix(weights)
    model = AutoModelForImageClassification.from_config(
        architecture_config(recipe.model, recipe_class_names(recipe)))
    load_weights(model, weights)
    return model.eval()


def class_names_of(model) -> list:
    return [model.config.id2label[i] for i in range(model.config.num_labels)]


def recipe_class_names(recipe) -> list:
    from hfcls.data.loaders import build_datasets, class_names

    if recipe.data.train is None:
        raise HfclsError("the recipe has no data.train source; hfcls takes a model's class names from it")
    return class_names(build_datasets(recipe.data, recipe.seed, ("train",))["train"])


def architecture_config(model_section, class_names: list):
    """The recipe's model config with a head for `class_names` (nothing downloaded for
    `model.config`; only the config for `model.pretrained`)."""
    from transformers import AutoConfig

    from hfcls.models import config_from_dict, label_maps

    labels = label_maps(class_names)
    if model_section.config is not None:
        return config_from_dict(model_section.config, labels)
    try:
        return AutoConfig.from_pretrained(model_section.pretrained, **labels)
    except OSError as error:
        raise HfclsError(f"model.pretrained: cannot load the config of {model_section.pretrained!r} "
                         f"({str(error).splitlines()[0]})") from None


def load_weights(model, path: Path) -> None:
    """Load a state dict into `model`; on a mismatch say whether the class count or the architecture differs."""
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and state[k].shape != own[k].shape]
    num_labels = model.config.num_labels
    if not missing and not unexpected and reshaped and all(_is_head(own[k], state[k], num_labels) for k in reshaped):
        raise HfclsError(f"checkpoint {path} has {state[reshaped[0]].shape[0]} classes but the recipe's data has "
                         f"{num_labels}; evaluate it with the data it was trained on")
    if missing or unexpected or reshaped:
        example = (f"{reshaped[0]}: {tuple(state[reshaped[0]].shape)} in the checkpoint, "
                   f"{tuple(own[reshaped[0]].shape)} in the recipe" if reshaped else (missing + unexpected)[0])
        raise HfclsError(f"checkpoint {path} does not match the recipe's model ({model.config.model_type}): "
                         f"{len(missing)} missing, {len(unexpected)} unexpected and {len(reshaped)} differently "
                         f"shaped tensors (e.g. {example}); use the recipe the checkpoint was trained with")
    model.load_state_dict(state)


def read_state_dict(path) -> dict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as error:  # safetensors raises its own untyped errors
        raise HfclsError(f"cannot read weights {path} ({error}); the file is damaged or not safetensors") from None


# ----------------------------------------------------------------------------- --load-from


def weights_file(source: str) -> Path:
    path = Path(source)
    if path.is_file():
        verify_hash_suffix(path)
        return path
    if path.is_dir():
        if not (path / WEIGHTS).is_file():
            raise HfclsError(f"--load-from {source}: the folder has no {WEIGHTS}; pass a checkpoint folder, "
                             "a Hugging Face model folder or a .safetensors file")
        return path / WEIGHTS
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(source, WEIGHTS))
    except (HfHubHTTPError, LocalEntryNotFoundError, ValueError, OSError) as error:
        raise HfclsError(f"--load-from {source}: not a local path, and not loadable from the Hub "
                         f"({str(error).splitlines()[0]})") from None


def load_finetune_weights(model, source: str) -> list:
    """Copy `source`'s weights into `model`; return the head keys left re-initialised."""
    path = weights_file(source)
    saved = read_state_dict(path)
    own = model.state_dict()
    head = [key for key in own if not key.startswith(model.base_model_prefix + ".")]
    for key in own:
        if key not in saved:
            raise HfclsError(f"--load-from {source}: the checkpoint has no {key} (shape {tuple(own[key].shape)}); "
                             "it is another architecture than the recipe's model")
    for key in saved:
        if key not in own:
            raise HfclsError(f"--load-from {source}: the checkpoint has {key} (shape {tuple(saved[key].shape)}), "
                             "which the recipe's model lacks; it is another architecture")
    skipped = []
    for key, value in own.items():
        if saved[key].shape == value.shape:
            continue
        if key not in head:
            raise HfclsError(f"--load-from {source}: {key} has shape {tuple(saved[key].shape)} in the checkpoint "
                             f"but {tuple(value.shape)} in the recipe's model; it is another architecture")
        skipped.append(key)
    model.load_state_dict({k: v for k, v in saved.items() if k not in skipped}, strict=False)
    if skipped:
        logger.warning("--load-from %s: classification head re-initialised (shape differs, another class count): %s",
                       source, ", ".join(skipped))
    logger.info("loaded weights from %s", path)
    return skipped


def _is_head(ours, theirs, num_labels: int) -> bool:
    """A classifier tensor: one row per class, the same otherwise."""
    return ours.shape[0] == num_labels and ours.shape[1:] == theirs.shape[1:]


def _load_hf_folder(folder: Path):
    from transformers import AutoModelForImageClassification

    try:
        return AutoModelForImageClassification.from_pretrained(folder)
    except (OSError, ValueError) as error:
        raise HfclsError(f"cannot load the model in {folder} ({str(error).splitlines()[0]})") from None
