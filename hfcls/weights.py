"""`--load-from`: weights only, into a freshly built model (fine-tuning).

The source is an hfcls checkpoint folder, a Hugging Face folder, a
`.safetensors` file, or a Hub id. Keys of the classification head whose shape
differs (another class count) keep their new initialisation, with a warning;
any other difference means another architecture: an error naming the key.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"


def weights_file(source: str) -> Path:
    path = Path(source)
    if path.is_file():
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


def load_weights(model: torch.nn.Module, source: str) -> list:
    """Copy `source`'s weights into `model`; return the head keys left re-initialised."""
    path = weights_file(source)
    try:
        saved = load_file(str(path))
    except Exception as error:  # safetensors raises its own untyped errors
        raise HfclsError(f"--load-from {source}: cannot read {path} ({error})") from None
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
