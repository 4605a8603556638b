"""The one reader of model artifacts, timm's `load_state_dict` for hfcls's forms: what kind a path is,
its weights as a state dict, and whether a published file is what its name says. hfcls-eval,
hfcls-demo, hfcls.pipeline, hfcls-publish, hfcls-push and --load-from all read through it; what an
artifact says about itself is hfcls.artifacts.describe's, the models built from it hfcls.artifacts.loading's.

Kinds (`inspect_artifact`):

- "hf": a Hugging Face folder (best/, latest/, a published folder): config.json + model.safetensors
  + preprocessor_config.json.
- "checkpoint": a training checkpoint (checkpoints/epoch_N or step_N): hfcls_state.json,
  config.json, preprocessor_config.json, model.safetensors (the raw weights) and, when the
  run kept an average, ema.safetensors. A LoRA run's (adapter_config.json) are read merged: the
  plain model's weights, as every export holds them.
- "published": `<name>-<sha256[:8]>.safetensors` from hfcls-publish, checked against the hash
  in its name; its metadata holds the model config, class names and preprocessing.
- "weights": any other .safetensors file: one with hfcls metadata (a published file renamed) is read
  as published, names its own classes and is not hash-checked; a bare state dict takes its
  architecture and class names from a recipe.
- "onnx": an `.onnx` graph from hfcls-export, its config, class names and preprocessing in its
  metadata. It has no PyTorch weights: it evaluates and predicts (hfcls.artifacts.loading.load_predictor)
  but has no state dict.

`use_ema`: None (the default) reads what the run evaluated, which is the EMA of a checkpoint
that holds one; True insists on the EMA; False takes a checkpoint's raw weights.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from hfcls.artifacts.checkpoint import EMA_FILE, STATE_FILE, check_not_legacy, checked_state
from hfcls.artifacts.export import CONFIG_FILE, WEIGHTS_FILE
from hfcls.artifacts.run_dir import HASH_CHARS, HASHED_NAME, ONNX_SUFFIX, work_dir_of
from hfcls.errors import HfclsError
from hfcls.labels import check_label_maps
from hfcls.timm_models import check_buildable, check_label_names, is_timm

FORMS = (
    "a best/ or latest/ folder, a checkpoints/epoch_N folder, a published <name>-<hash>.safetensors, "
    "another .safetensors file or an .onnx file from hfcls-export"
)


@dataclass(frozen=True)
class Artifact:
    path: Path
    kind: str  # "hf", "checkpoint", "published", "weights" or "onnx"

    @property
    def work_dir(self) -> Path | None:
        return work_dir_of(self.path)

    def __str__(self) -> str:
        return str(self.path)


def inspect_artifact(path) -> Artifact:
    """What kind of artifact `path` is; an error names the forms hfcls reads."""
    if isinstance(path, Artifact):
        return path
    if "://" in str(path):  # Path would fold its // and call it a missing file
        raise HfclsError(
            f"checkpoint {path} is an address; hfcls reads artifacts on this machine: download it, then pass {FORMS}"
        )
    path = Path(path)
    if path.is_dir():
        check_not_legacy(path)
        if (path / STATE_FILE).is_file():
            return Artifact(path, "checkpoint")
        if (path / CONFIG_FILE).is_file():
            return Artifact(path, "hf")
        if (path / WEIGHTS_FILE).is_file():
            raise HfclsError(
                f"{path} holds {WEIGHTS_FILE} but neither {STATE_FILE} nor {CONFIG_FILE}: an incomplete "
                "checkpoint (its save was interrupted); use another checkpoint"
            )
        raise HfclsError(f"{path} is not a model folder (no {CONFIG_FILE} or {STATE_FILE}); pass {FORMS}")
    if path.is_file() and path.suffix == ".safetensors":
        return Artifact(path, "published" if HASHED_NAME.search(path.name) else "weights")
    if path.is_file() and path.suffix == ONNX_SUFFIX:
        return Artifact(path, "onnx")
    if path.exists():
        raise HfclsError(f"checkpoint {path} is not a folder or a .safetensors file; pass {FORMS}")
    raise HfclsError(f"checkpoint {path} does not exist; pass {FORMS}")


# ----------------------------------------------------------------------------- weights


def load_state_dict(path, use_ema: bool | None = None) -> dict:
    """The weights of any artifact as a state dict on the CPU: the EMA of a checkpoint by its file name."""
    artifact = inspect_artifact(path)
    if artifact.kind == "checkpoint":
        checked_state(artifact.path)  # every file whole, as saved
        return _plain_weights(artifact, read_safetensors(artifact.path / _checkpoint_weights(artifact, use_ema)))
    check_single_set(artifact, use_ema)
    if artifact.kind == "onnx":
        raise HfclsError(
            f"{artifact} is an ONNX graph, not PyTorch weights: it evaluates and predicts "
            "(hfcls-eval, hfcls-demo), but this needs the checkpoint or folder it was exported from"
        )
    if artifact.kind == "hf":
        return _hf_folder_state(artifact)
    if artifact.kind == "published":
        verify_published(artifact.path)
    return read_safetensors(artifact.path)


def weights_file(path, use_ema: bool | None = None) -> Path:
    """The file `load_state_dict(path, use_ema)` reads the weights from (an ONNX graph: itself)."""
    artifact = inspect_artifact(path)
    if artifact.kind == "checkpoint":
        return artifact.path / _checkpoint_weights(artifact, use_ema)
    return artifact.path / WEIGHTS_FILE if artifact.kind == "hf" else artifact.path


def _plain_weights(artifact: Artifact, state: dict) -> dict:
    """A checkpoint's weights as the plain model's: those of a LoRA run (model.lora) merged."""
    from hfcls.modeling.lora import ADAPTER_CONFIG, merge_saved  # imports transformers

    if not (artifact.path / ADAPTER_CONFIG).is_file():
        return state
    from transformers import AutoConfig, AutoModelForImageClassification

    from hfcls.models import remote_code_refused  # registers hfcls's own architectures with the Auto classes

    with remote_code_refused(artifact.path, str(artifact)):
        model = AutoModelForImageClassification.from_config(AutoConfig.from_pretrained(artifact.path))
    return {
        key: value.detach()
        for key, value in merge_saved(model, artifact.path, state, str(artifact)).state_dict().items()
    }


def _hf_folder_state(artifact: Artifact) -> dict:
    return {key: value.detach() for key, value in hf_folder_model(artifact).state_dict().items()}


def hf_folder_model(artifact: Artifact, recipe=None):
    """A Hugging Face folder's model, its weights under the model's own names. save_pretrained may store
    them under the original checkpoint names (transformers 5 does for ViT, DeiT and Swin attention);
    from_pretrained maps them back, and whatever it could not place is an error, not a random init."""
    from transformers import AutoConfig, AutoModelForImageClassification

    from hfcls.models import remote_code_refused  # registers hfcls's own architectures with the Auto classes

    read_safetensors(artifact.path / WEIGHTS_FILE, check_only=True)
    with remote_code_refused(artifact.path, str(artifact)):
        config = AutoConfig.from_pretrained(artifact.path, trust_remote_code=trusts_remote_code(recipe))
        if is_timm(config):  # what a timm config.json declares, checked before anything is built
            check_label_names(config, artifact.path / CONFIG_FILE)
            check_buildable(config, str(artifact.path / CONFIG_FILE))
        # Mismatched shapes listed in `info`, not raised: a head sized by a config that names more (or
        # fewer) classes than the weights hold is the folder's damage, named below in one line.
        model, info = AutoModelForImageClassification.from_pretrained(
            artifact.path,
            config=config,
            output_loading_info=True,
            ignore_mismatched_sizes=True,
            trust_remote_code=trusts_remote_code(recipe),
        )
    problems = {
        name: sorted(info[key])
        for name, key in (
            ("missing", "missing_keys"),
            ("unexpected", "unexpected_keys"),
            ("differently shaped", "mismatched_keys"),
        )
        if info[key]
    }
    check_label_maps(model.config, str(artifact.path / CONFIG_FILE))
    if problems:
        name, keys = next(iter(problems.items()))
        raise HfclsError(
            f"{artifact}: {WEIGHTS_FILE} does not match its {CONFIG_FILE} ({len(keys)} {name} tensors, "
            f"e.g. {keys[0]}); the folder is damaged: export it again"
        )
    return model


def _checkpoint_weights(artifact: Artifact, use_ema: bool | None) -> str:
    has_ema = (artifact.path / EMA_FILE).is_file()
    if use_ema and not has_ema:
        raise HfclsError(
            f"checkpoint {artifact} holds no EMA weights ({EMA_FILE}): the run had train.ema off; "
            "leave out --ema to read its weights"
        )
    return EMA_FILE if has_ema and use_ema is not False else WEIGHTS_FILE


def check_single_set(artifact: Artifact, use_ema: bool | None) -> None:
    if use_ema is not None:
        raise HfclsError(
            f"{artifact} holds one set of weights (the ones its run evaluated); choosing between the "
            "EMA and the raw weights needs a training checkpoint (checkpoints/epoch_N)"
        )


def read_safetensors(path, check_only: bool = False) -> dict | None:
    """The tensors of a .safetensors file; with `check_only`, only that it opens as one."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        if check_only:
            with safe_open(str(path), framework="pt"):
                return None
        return load_file(str(path), device="cpu")
    except Exception as error:  # safetensors raises its own untyped errors
        raise HfclsError(f"cannot read weights {path} ({error}); the file is damaged or not safetensors") from None


def verify_published(path) -> str:
    """Check that a published file's sha256 starts with the hash in its name; return the full digest."""
    path = Path(path)
    match = HASHED_NAME.search(path.name)
    if match is None:
        raise HfclsError(
            f"{path} is not a published file: its name does not end in -<8 hex digits>.safetensors "
            "(make one with hfcls-publish)"
        )
    digest = file_sha256(path)
    if not digest.startswith(match.group(1)):
        raise HfclsError(
            f"{path}: its content hashes to {digest[:HASH_CHARS]}, not the {match.group(1)} in its "
            "name; the file is corrupt or was modified: download or publish it again"
        )
    return digest


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def trusts_remote_code(recipe) -> bool:
    """Only a recipe that says so lets a model folder's own Python files run (model.trust_remote_code)."""
    return recipe is not None and recipe.model.trust_remote_code
