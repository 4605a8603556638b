"""Checkpoint averaging (the library side of hfcls-average, as timm's avg_checkpoints.py): the mean
of several artifacts' weights, published like any release (OUT-<sha256[:8]>.safetensors and a
Hugging Face folder) so it evaluates and predicts on its own.

Each source's weights are those its run evaluated (a checkpoint's EMA when it holds one) unless
`use_ema` says otherwise. Float tensors are averaged; integer buffers (BatchNorm's batch
counters) are taken from the last source. BatchNorm statistics are averaged with the weights, as
timm does: for checkpoints of one run, close in training, that is what they estimate.
"""

from __future__ import annotations

from pathlib import Path

from hfcls.artifacts.describe import model_config, preprocessor
from hfcls.artifacts.loading import load_model
from hfcls.artifacts.publish import write_published
from hfcls.artifacts.weights import inspect_artifact, load_state_dict
from hfcls.errors import HfclsError


def average_checkpoints(
    sources: list, out, *, use_ema: bool | None = None, date: bool = False, recipe=None, overwrite: bool = False
) -> Path:
    """Average the weights of `sources` (2 or more artifacts of one architecture) into OUT-<hash>
    (refused where it exists, unless `overwrite`)."""
    if len(sources) < 2:
        raise HfclsError("averaging needs at least two checkpoints")
    artifacts = [inspect_artifact(source) for source in sources]
    first = artifacts[0]
    reference = load_state_dict(first, use_ema)
    check_same_architecture(first, model_config(first, recipe), reference, artifacts[1:], recipe, use_ema)
    total = {key: value.double() for key, value in reference.items() if value.is_floating_point()}
    last = reference
    for artifact in artifacts[1:]:
        last = load_state_dict(artifact, use_ema)
        for key in total:
            total[key] += last[key].double()
    averaged = {
        key: (total[key] / len(artifacts)).to(value.dtype) if key in total else last[key]
        for key, value in reference.items()
    }
    model = load_model(artifacts[-1], use_ema=use_ema, recipe=recipe)
    model.load_state_dict(averaged)
    return write_published(model, preprocessor(artifacts[-1], recipe), Path(out), date, overwrite)


def check_same_architecture(first, config, state: dict, others: list, recipe, use_ema) -> None:
    """Every artifact has the first one's model type and tensors of the same names and shapes."""
    for artifact in others:
        other_config = model_config(artifact, recipe)
        other = {key: tuple(value.shape) for key, value in load_state_dict(artifact, use_ema).items()}
        ours = {key: tuple(value.shape) for key, value in state.items()}
        if other_config.model_type != config.model_type or other != ours:
            differs = sorted(set(ours) ^ set(other)) or [k for k in ours if ours[k] != other[k]]
            detail = (
                f"{config.model_type} and {other_config.model_type}"
                if other_config.model_type != config.model_type
                else f"tensor {differs[0]} differs"
            )
            raise HfclsError(
                f"cannot average {first} with {artifact}: different architectures ({detail}); "
                "average checkpoints of one run, or of runs of one recipe"
            )
