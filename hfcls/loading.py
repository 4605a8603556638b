"""Load a trained classifier from any of the checkpoint forms hfcls writes.

- a Hugging Face folder (`best/`, `latest/`): config.json + model.safetensors; self-describing;
- a training checkpoint folder (`checkpoints/epoch_N`): its model.safetensors holds the
  state dict; the architecture comes from the recipe, the class names from its data;
- a published `.safetensors` file, `<name>-<first 8 hex of sha256>.safetensors`: as above,
  after checking the file against the hash in its name.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from hfcls.errors import HfclsError

HASH_SUFFIX = re.compile(r"-([0-9a-f]{8})$")


def sha256_file(path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_hash_suffix(path) -> None:
    """Refuse a file named `<name>-<8 hex>.<ext>` whose sha256 does not start with those 8 hex."""
    path = Path(path)
    match = HASH_SUFFIX.search(path.stem)
    if match is None:
        return
    actual = sha256_file(path)[:8]
    if actual != match.group(1):
        raise HfclsError(f"{path}: its sha256 starts with {actual}, not the {match.group(1)} in its name; "
                         "the file is damaged or was changed after publishing: download or publish it again")


def checkpoint_kind(path) -> str:
    """'hf' (Hugging Face folder), 'training' (checkpoints/epoch_N) or 'safetensors' (a weights file)."""
    path = Path(path)
    if path.is_dir():
        if (path / "config.json").is_file():
            return "hf"
        if (path / "model.safetensors").is_file():
            return "training"
        raise HfclsError(f"checkpoint folder {path} holds neither config.json (a best/ or latest/ export) "
                         "nor model.safetensors (a checkpoints/epoch_N folder)")
    if path.is_file() and path.suffix == ".safetensors":
        return "safetensors"
    if path.exists():
        raise HfclsError(f"checkpoint {path} is not a folder or a .safetensors file")
    raise HfclsError(f"checkpoint {path} does not exist; pass a best/ or latest/ folder, "
                     "a checkpoints/epoch_N folder or a .safetensors file")


def load_classifier(checkpoint, recipe=None):
    """The model, in eval mode, with `config.id2label` naming its classes.

    A recipe is needed for the state-dict forms (training folders, .safetensors files).
    """
    kind = checkpoint_kind(checkpoint)
    if kind == "hf":
        return _load_hf_folder(Path(checkpoint)).eval()
    if recipe is None:
        raise HfclsError(f"checkpoint {checkpoint} holds weights only; pass the recipe it was trained with "
                         "(its model section gives the architecture, its data the class names)")
    weights = Path(checkpoint) / "model.safetensors" if kind == "training" else Path(checkpoint)
    if kind == "safetensors":
        verify_hash_suffix(weights)
    model = build_architecture(recipe.model, recipe_class_names(recipe))
    load_weights(model, weights)
    return model.eval()


def class_names_of(model) -> list:
    return [model.config.id2label[i] for i in range(model.config.num_labels)]


def recipe_class_names(recipe) -> list:
    from hfcls.data.loaders import build_datasets, class_names

    if recipe.data.train is None:
        raise HfclsError("the recipe has no data.train source; hfcls takes a model's class names from it")
    return class_names(build_datasets(recipe.data, recipe.seed, ("train",))["train"])


def build_architecture(model_section, class_names: list):
    """The recipe's model with random weights and a head for `class_names` (nothing downloaded
    for `model.config`; only the config for `model.pretrained`)."""
    from transformers import AutoConfig, AutoModelForImageClassification

    from hfcls.models import config_from_dict, label_maps

    labels = label_maps(class_names)
    if model_section.config is not None:
        config = config_from_dict(model_section.config, labels)
    else:
        try:
            config = AutoConfig.from_pretrained(model_section.pretrained, **labels)
        except OSError as error:
            raise HfclsError(f"model.pretrained: cannot load the config of {model_section.pretrained!r} "
                             f"({str(error).splitlines()[0]})") from None
    return AutoModelForImageClassification.from_config(config)


def load_weights(model, path: Path) -> None:
    """Load a state dict into `model`; on a mismatch say whether the class count or the architecture differs."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise HfclsError(f"cannot read weights {path} ({error}); the file is damaged or not safetensors") from None
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


def _is_head(ours, theirs, num_labels: int) -> bool:
    """A classifier tensor: one row per class, the same otherwise."""
    return ours.shape[0] == num_labels and ours.shape[1:] == theirs.shape[1:]


def _load_hf_folder(folder: Path):
    from transformers import AutoModelForImageClassification

    try:
        return AutoModelForImageClassification.from_pretrained(folder)
    except (OSError, ValueError) as error:
        raise HfclsError(f"cannot load the model in {folder} ({str(error).splitlines()[0]})") from None
