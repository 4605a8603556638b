"""Models built from artifacts: `load_model` for what needs PyTorch weights (publish, export,
average, CAM), `load_predictor` for what only predicts (evaluation, inference), an ONNX graph included,
and `load_reference_model` for a model named by a recipe (a distillation teacher): any of those
artifacts or a Hub id, with the preprocessing it was trained with.
"""

from __future__ import annotations

from pathlib import Path

from hfcls.artifacts.describe import model_config, preprocessor
from hfcls.artifacts.weights import (
    check_single_set,
    hf_folder_model,
    inspect_artifact,
    load_state_dict,
    trusts_remote_code,
)
from hfcls.errors import HfclsError
from hfcls.timm_models import check_buildable, is_timm


def load_model(path, *, use_ema: bool | None = None, recipe=None):
    """The artifact's model, on the CPU, in eval mode, with `config.id2label` naming its classes."""
    from transformers import AutoModelForImageClassification

    artifact = inspect_artifact(path)
    if artifact.kind == "hf":  # from_pretrained builds it once, its weights in place
        check_single_set(artifact, use_ema)
        return hf_folder_model(artifact, recipe).eval()
    state = load_state_dict(artifact, use_ema)
    config = model_config(artifact, recipe)
    if is_timm(config):
        check_buildable(config, str(artifact))
    model = AutoModelForImageClassification.from_config(config, trust_remote_code=trusts_remote_code(recipe))
    load_weights(model, state, artifact)
    return model.eval()


def load_predictor(path, *, use_ema: bool | None = None, recipe=None):
    """What evaluation and inference run: `load_model`'s model, or for an .onnx file its graph
    on onnxruntime behind the same call (`model(pixel_values=x).logits`, `config.id2label`)."""
    artifact = inspect_artifact(path)
    if artifact.kind == "onnx":
        from hfcls.artifacts.onnx_model import OnnxClassifier

        check_single_set(artifact, use_ema)
        return OnnxClassifier(artifact.path, model_config(artifact)).eval()
    return load_model(artifact, use_ema=use_ema, recipe=recipe)


def load_reference_model(source: str, key: str) -> tuple:
    """(model in eval mode on the CPU, its image processor) for `source`: a local artifact (the weights its
    run evaluated), else a Hub id. `key` names the recipe key in a message about a source that cannot be read."""
    if Path(source).is_symlink() and not Path(source).exists():
        raise HfclsError(
            f"{key}: {source} is a symbolic link that leads nowhere (a loop, or a target that is gone); "
            "point it at a best/ folder, a checkpoint or a published .safetensors file"
        )
    if Path(source).exists():
        try:
            return load_model(source), preprocessor(source)
        except HfclsError as error:
            raise HfclsError(f"{key}: {error}") from None
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from hfcls.models import remote_code_refused

    try:
        with remote_code_refused(source, key):
            return AutoModelForImageClassification.from_pretrained(source).eval(), AutoImageProcessor.from_pretrained(
                source
            )
    except (OSError, ValueError) as error:  # ValueError: not even a valid repo id
        raise HfclsError(
            f"{key}: {source} is no file or folder here, and no model the Hub gives "
            f"({str(error).splitlines()[0]}); pass a best/ folder, a checkpoint, a published .safetensors "
            "file or a Hub id (online: HF_HUB_OFFLINE=0)"
        ) from None


def load_weights(model, state: dict, where) -> None:
    """Load a state dict into `model`; on a mismatch say whether the class count or the architecture differs."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and state[k].shape != own[k].shape]
    num_labels = model.config.num_labels
    if not missing and not unexpected and reshaped and all(_is_head(own[k], state[k], num_labels) for k in reshaped):
        raise HfclsError(
            f"checkpoint {where} has {state[reshaped[0]].shape[0]} classes but the recipe's data has "
            f"{num_labels}; evaluate it with the data it was trained on"
        )
    if missing or unexpected or reshaped:
        example = (
            f"{reshaped[0]}: {tuple(state[reshaped[0]].shape)} in the checkpoint, "
            f"{tuple(own[reshaped[0]].shape)} in the model"
            if reshaped
            else (missing + unexpected)[0]
        )
        raise HfclsError(
            f"checkpoint {where} does not match the model ({model.config.model_type}): "
            f"{len(missing)} missing, {len(unexpected)} unexpected and {len(reshaped)} differently "
            f"shaped tensors (e.g. {example}); use the recipe the checkpoint was trained with"
        )
    model.load_state_dict(state)


def _is_head(ours, theirs, num_labels: int) -> bool:
    """A classifier tensor: one row per class, the same otherwise."""
    return ours.shape[0] == num_labels and ours.shape[1:] == theirs.shape[1:]
