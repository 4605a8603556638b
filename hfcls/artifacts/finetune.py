"""`load_from`: a new run starts from another model's weights (a local artifact, or a Hub id's
model.safetensors), its classification head re-initialised where the class count differs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hfcls.artifacts.export import WEIGHTS_FILE
from hfcls.artifacts.weights import load_state_dict, read_safetensors
from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)


def finetune_state_dict(source: str) -> dict:
    """The weights of a local artifact (the EMA of a checkpoint that has one) or a Hub id's."""
    if Path(source).exists():
        return load_state_dict(source)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return read_safetensors(hf_hub_download(source, WEIGHTS_FILE))
    except (HfHubHTTPError, LocalEntryNotFoundError, ValueError, OSError) as error:
        raise HfclsError(
            f"load_from {source}: not a local path, and not loadable from the Hub ({str(error).splitlines()[0]})",
            param="load_from",
        ) from None


def load_finetune_weights(model, source: str) -> list:
    """Copy `source`'s weights into `model`; return the head keys left re-initialised."""
    saved = finetune_state_dict(source)
    own = model.state_dict()
    head = [key for key in own if not key.startswith(model.base_model_prefix + ".")]
    for key in own:
        if key not in saved:
            raise HfclsError(
                f"load_from {source}: the checkpoint has no {key} (shape {tuple(own[key].shape)}); "
                "it is another architecture than the recipe's model",
                param="load_from",
            )
    for key in saved:
        if key not in own:
            raise HfclsError(
                f"load_from {source}: the checkpoint has {key} (shape {tuple(saved[key].shape)}), "
                "which the recipe's model lacks; it is another architecture",
                param="load_from",
            )
    skipped = []
    for key, value in own.items():
        if saved[key].shape == value.shape:
            continue
        if key not in head:
            raise HfclsError(
                f"load_from {source}: {key} has shape {tuple(saved[key].shape)} in the checkpoint "
                f"but {tuple(value.shape)} in the recipe's model; it is another architecture",
                param="load_from",
            )
        skipped.append(key)
    model.load_state_dict({k: v for k, v in saved.items() if k not in skipped}, strict=False)
    if skipped:
        logger.warning(
            "--load-from %s: classification head re-initialised (shape differs, another class count): %s",
            source,
            ", ".join(skipped),
        )
    logger.info("loaded weights from %s", source)
    return skipped
