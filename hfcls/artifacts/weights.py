"""The one reader of model artifacts: hfcls-eval, hfcls-demo, hfcls.pipeline, hfcls-publish,
hfcls-push and --load-from all go through it (timm's `load_state_dict`, for hfcls's forms).

Kinds (`inspect_artifact`):

- "hf": a Hugging Face folder (best/, latest/, a published folder): config.json + model.safetensors
  + preprocessor_config.json.
- "checkpoint": a training checkpoint (checkpoints/epoch_N or step_N): trainer_state.json,
  config.json, preprocessor_config.json, model.safetensors (the raw weights) and, when the
  run kept an average, ema.safetensors.
- "published": `<name>-<sha256[:8]>.safetensors` from hfcls-publish, checked against the hash
  in its name; its metadata holds the model config, class names and preprocessing.
- "weights": any other .safetensors file: one with hfcls metadata (a published file renamed) is read
  as published, names its own classes and is not hash-checked; a bare state dict takes its
  architecture and class names from a recipe.
- "onnx": an `.onnx` graph from hfcls-export, its config, class names and preprocessing in its
  metadata. It has no PyTorch weights: `load_predictor` runs it with onnxruntime for
  evaluation and inference; `load_model` (what needs weights) refuses it.

`use_ema`: None (the default) reads what the run evaluated, which is the EMA of a checkpoint
that holds one; True insists on the EMA; False takes a checkpoint's raw weights.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from hfcls.artifacts.layout import (CONFIG_FILE, EMA_FILE, EXPORTS, HASH_CHARS, HASHED_NAME, METADATA_KEY,
                                    ONNX_SUFFIX, PREPROCESSOR_FILE, RECIPE_FILE, STATE_FILE, WEIGHTS_FILE,
                                    checked_state, file_sha256, work_dir_of)
from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)

FORMS = ("a best/ or latest/ folder, a checkpoints/epoch_N folder, a published <name>-<hash>.safetensors, "
         "another .safetensors file or an .onnx file from hfcls-export")


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
    path = Path(path)
    if path.is_dir():
        if (path / STATE_FILE).is_file():
            return Artifact(path, "checkpoint")
        if (path / CONFIG_FILE).is_file():
            return Artifact(path, "hf")
        if (path / WEIGHTS_FILE).is_file():
            raise HfclsError(f"{path} holds {WEIGHTS_FILE} but neither {STATE_FILE} nor {CONFIG_FILE}: an incomplete "
                             "checkpoint (its save was interrupted); use another checkpoint")
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
        return read_safetensors(artifact.path / _checkpoint_weights(artifact, use_ema))
    _check_single_set(artifact, use_ema)
    if artifact.kind == "onnx":
        raise HfclsError(f"{artifact} is an ONNX graph, not PyTorch weights: it evaluates and predicts "
                         "(hfcls-eval, hfcls-demo), but this needs the checkpoint or folder it was exported from")
    if artifact.kind == "hf":
        return _hf_folder_state(artifact)
    if artifact.kind == "published":
        verify_published(artifact.path)
    return read_safetensors(artifact.path)


def _hf_folder_state(artifact: Artifact) -> dict:
    return {key: value.detach() for key, value in _hf_folder_model(artifact).state_dict().items()}


def _hf_folder_model(artifact: Artifact, recipe=None):
    """A Hugging Face folder's model, its weights under the model's own names. save_pretrained may store
    them under the original checkpoint names (transformers 5 does for ViT, DeiT and Swin attention);
    from_pretrained maps them back, and whatever it could not place is an error, not a random init."""
    from transformers import AutoModelForImageClassification

    from hfcls.models import remote_code_refused  # registers hfcls's own architectures with the Auto classes

    read_safetensors(artifact.path / WEIGHTS_FILE, check_only=True)
    with remote_code_refused(artifact.path, str(artifact)):
        model, info = AutoModelForImageClassification.from_pretrained(artifact.path, output_loading_info=True,
                                                                      trust_remote_code=trusts_remote_code(recipe))
    problems = {name: sorted(info[key]) for name, key in (("missing", "missing_keys"), ("unexpected", "unexpected_keys"),
                                                          ("differently shaped", "mismatched_keys")) if info[key]}
    if problems:
        name, keys = next(iter(problems.items()))
        raise HfclsError(f"{artifact}: {WEIGHTS_FILE} does not match its {CONFIG_FILE} ({len(keys)} {name} tensors, "
                         f"e.g. {keys[0]}); the folder is damaged: export it again")
    return model


def _checkpoint_weights(artifact: Artifact, use_ema: bool | None) -> str:
    has_ema = (artifact.path / EMA_FILE).is_file()
    if use_ema and not has_ema:
        raise HfclsError(f"checkpoint {artifact} holds no EMA weights ({EMA_FILE}): the run had train.ema off; "
                         "leave out --ema to read its weights")
    return EMA_FILE if has_ema and use_ema is not False else WEIGHTS_FILE


def _check_single_set(artifact: Artifact, use_ema: bool | None) -> None:
    if use_ema is not None:
        raise HfclsError(f"{artifact} holds one set of weights (the ones its run evaluated); choosing between the "
                         "EMA and the raw weights needs a training checkpoint (checkpoints/epoch_N)")


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
        raise HfclsError(f"{path} is not a published file: its name does not end in -<8 hex digits>.safetensors "
                         "(make one with hfcls-publish)")
    digest = file_sha256(path)
    if not digest.startswith(match.group(1)):
        raise HfclsError(f"{path}: its content hashes to {digest[:HASH_CHARS]}, not the {match.group(1)} in its "
                         "name; the file is corrupt or was modified: download or publish it again")
    return digest


def published_metadata(path, required: bool = True) -> dict | None:
    """The `hfcls` metadata of a published file: config, class_names, preprocessor, hfcls_version
    (None for a hash-named file without it, unless `required`)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except Exception as error:
        raise HfclsError(f"cannot read {path} ({error}); the file is damaged or not safetensors") from None
    if raw is None and required:
        raise HfclsError(f"{path} has no hfcls metadata (model config); pass the recipe it was trained with, "
                         "or publish it with hfcls-publish")
    return None if raw is None else json.loads(raw)


# ----------------------------------------------------------------------------- models


def model_config(path, recipe=None):
    """The artifact's model config (architecture and class names); a bare weights file takes the recipe's."""
    from transformers import AutoConfig

    import hfcls.modeling  # noqa: F401  hfcls's own architectures, registered with the Auto classes
    from hfcls.models import architecture_config, remote_code_refused

    artifact = inspect_artifact(path)
    if artifact.kind in ("hf", "checkpoint"):
        folder = _described_folder(artifact)
        with remote_code_refused(folder, str(artifact)):
            return AutoConfig.from_pretrained(folder, trust_remote_code=trusts_remote_code(recipe))
    metadata = own_metadata(artifact, recipe)
    if metadata is not None:
        config = metadata["config"]
        try:
            config = AutoConfig.for_model(**config)
        except ValueError:
            raise HfclsError(f"{artifact}: model_type {config['model_type']!r} is not registered with transformers; "
                             "import the module that defines it first (recipe key custom_imports)") from None
        named = [config.id2label[i] for i in range(config.num_labels)]
        if metadata.get("class_names", named) != named:
            raise HfclsError(f"{artifact}: the class names of its metadata and of its config differ; the file "
                             "was altered: publish it again")
        return config
    if recipe is None:
        raise HfclsError(f"{artifact} holds weights only; pass the recipe it was trained with (its model section "
                         "gives the architecture, its data the class names)")
    return architecture_config(recipe.model, recipe_class_names(recipe))


def load_model(path, *, use_ema: bool | None = None, recipe=None):
    """The artifact's model, on the CPU, in eval mode, with `config.id2label` naming its classes."""
    from transformers import AutoModelForImageClassification

    artifact = inspect_artifact(path)
    if artifact.kind == "hf":  # from_pretrained builds it once, its weights in place
        _check_single_set(artifact, use_ema)
        return _hf_folder_model(artifact, recipe).eval()
    state = load_state_dict(artifact, use_ema)
    model = AutoModelForImageClassification.from_config(model_config(artifact, recipe),
                                                        trust_remote_code=trusts_remote_code(recipe))
    load_weights(model, state, artifact)
    return model.eval()


def trusts_remote_code(recipe) -> bool:
    """Only a recipe that says so lets a model folder's own Python files run (model.trust_remote_code)."""
    return recipe is not None and recipe.model.trust_remote_code
def load_predictor(path, *, use_ema: bool | None = None, recipe=None):
    """What evaluation and inference run: `load_model`'s model, or for an .onnx file its graph
    on onnxruntime behind the same call (`model(pixel_values=x).logits`, `config.id2label`)."""
    artifact = inspect_artifact(path)
    if artifact.kind == "onnx":
        from hfcls.artifacts.onnx_model import OnnxClassifier

        _check_single_set(artifact, use_ema)
        return OnnxClassifier(artifact.path, model_config(artifact)).eval()
    return load_model(artifact, use_ema=use_ema, recipe=recipe)


def preprocessor(path, recipe=None):
    """The artifact's eval preprocessing as a BitImageProcessor; a bare weights file takes the recipe's."""
    from hfcls.artifacts.export import image_processor, processor_from_dict

    artifact = inspect_artifact(path)
    if artifact.kind in ("hf", "checkpoint"):
        return processor_from_dict(json.loads((_described_folder(artifact) / PREPROCESSOR_FILE).read_text()))
    metadata = own_metadata(artifact, recipe)
    if metadata is not None and metadata.get("preprocessor") is not None:
        return processor_from_dict(metadata["preprocessor"])
    if recipe is None:
        raise HfclsError(f"{artifact} records no preprocessing (published by an older hfcls); pass the recipe "
                         "it was trained with, or publish it again")
    return image_processor(recipe.data)


def own_metadata(artifact: Artifact, recipe=None) -> dict | None:
    """What a file says about itself: an ONNX graph's metadata, a published file's hfcls metadata
    (required unless a recipe stands in), or that of any other .safetensors file that has it (a
    published file renamed), which then names its classes rather than the recipe."""
    if artifact.kind == "onnx":
        from hfcls.artifacts.onnx_model import onnx_metadata

        return onnx_metadata(artifact.path)
    if artifact.kind not in ("published", "weights"):
        return None
    return published_metadata(artifact.path, required=artifact.kind == "published" and recipe is None)


def _described_folder(artifact: Artifact) -> Path:
    """The folder holding the artifact's config.json and preprocessor_config.json.

    Checkpoints written before hfcls saved them inside take them from their run's exports.
    """
    if (artifact.path / CONFIG_FILE).is_file() and (artifact.path / PREPROCESSOR_FILE).is_file():
        return artifact.path
    work_dir = artifact.work_dir
    for export in EXPORTS:
        if work_dir is not None and (work_dir / export / CONFIG_FILE).is_file():
            return work_dir / export
    raise HfclsError(f"{artifact} has no {CONFIG_FILE} or {PREPROCESSOR_FILE}, and no best/ or latest/ export "
                     "of its run describes the model; pass a complete checkpoint or export")


def load_weights(model, state: dict, where) -> None:
    """Load a state dict into `model`; on a mismatch say whether the class count or the architecture differs."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and state[k].shape != own[k].shape]
    num_labels = model.config.num_labels
    if not missing and not unexpected and reshaped and all(_is_head(own[k], state[k], num_labels) for k in reshaped):
        raise HfclsError(f"checkpoint {where} has {state[reshaped[0]].shape[0]} classes but the recipe's data has "
                         f"{num_labels}; evaluate it with the data it was trained on")
    if missing or unexpected or reshaped:
        example = (f"{reshaped[0]}: {tuple(state[reshaped[0]].shape)} in the checkpoint, "
                   f"{tuple(own[reshaped[0]].shape)} in the model" if reshaped else (missing + unexpected)[0])
        raise HfclsError(f"checkpoint {where} does not match the model ({model.config.model_type}): "
                         f"{len(missing)} missing, {len(unexpected)} unexpected and {len(reshaped)} differently "
                         f"shaped tensors (e.g. {example}); use the recipe the checkpoint was trained with")
    model.load_state_dict(state)


def _is_head(ours, theirs, num_labels: int) -> bool:
    """A classifier tensor: one row per class, the same otherwise."""
    return ours.shape[0] == num_labels and ours.shape[1:] == theirs.shape[1:]


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


# ----------------------------------------------------------------------------- --load-from


def finetune_state_dict(source: str) -> dict:
    """--load-from: the weights of a local artifact (the EMA of a checkpoint that has one) or a Hub id's."""
    if Path(source).exists():
        return load_state_dict(source)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return read_safetensors(hf_hub_download(source, WEIGHTS_FILE))
    except (HfHubHTTPError, LocalEntryNotFoundError, ValueError, OSError) as error:
        raise HfclsError(f"--load-from {source}: not a local path, and not loadable from the Hub "
                         f"({str(error).splitlines()[0]})") from None


def load_finetune_weights(model, source: str) -> list:
    """Copy `source`'s weights into `model`; return the head keys left re-initialised."""
    saved = finetune_state_dict(source)
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
    logger.info("loaded weights from %s", source)
    return skipped
