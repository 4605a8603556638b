"""Release files whose name carries their own hash (MMClassification's `publish_model`).

Only the model's weights are kept: the EMA weights when the source holds an
average (what the run evaluated), on the CPU, without optimizer or scheduler state.

  OUT-<sha256[:8]>.safetensors   the state dict; metadata "hfcls" holds the model config,
                                 class names and eval preprocessing, so the file is used on its own
                                 (MMClassification's `{name}_{date}-{hash}` form with date=True)
  OUT-<sha256[:8]>/              the same model as a Hugging Face folder

Every training run ends with the same export into `<work_dir>/publish/`.
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path

from hfcls.version import __version__
from hfcls.artifacts.export import save_hf_folder
from hfcls.artifacts.hub import push
from hfcls.artifacts.layout import HASH_CHARS, METADATA_KEY, file_sha256
from hfcls.artifacts.weights import load_model, preprocessor

logger = logging.getLogger(__name__)


def publish(source, out, *, date: bool = False, use_ema: bool | None = None, recipe=None) -> Path:
    """Publish any artifact to OUT-<hash>.safetensors (+ Hugging Face folder); return the file's path.
    A bare weights file needs the `recipe` it was trained with."""
    model = load_model(source, use_ema=use_ema, recipe=recipe)
    return write_published(model, preprocessor(source, recipe), Path(out), date)


def write_published(model, processor, out: Path, date: bool = False) -> Path:
    from safetensors.torch import save_file

    out = out.with_name(out.name.removesuffix(".safetensors"))
    stem = f"{out.name}_{datetime.date.today():%Y%m%d}" if date else out.name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{stem}.tmp.safetensors"
    state = {key: tensor.detach().cpu().clone().contiguous() for key, tensor in model.state_dict().items()}
    metadata = json.dumps(published_metadata(model, processor), sort_keys=True)
    save_file(state, tmp, metadata={METADATA_KEY: metadata})
    final = out.parent / f"{stem}-{file_sha256(tmp)[:HASH_CHARS]}.safetensors"
    tmp.replace(final)
    save_hf_folder(model, processor, final.with_suffix(""))
    return final


def published_metadata(model, processor) -> dict:
    config = model.config
    return {
        "config": portable_config(model),
        "class_names": [config.id2label[i] for i in range(config.num_labels)],
        "preprocessor": processor.to_dict(),
        "hfcls_version": __version__,
    }


def portable_config(model) -> dict:
    """The config as save_pretrained records it, minus where it was loaded from: the same
    weights publish to the same bytes (and hash) from any folder or checkpoint."""
    config = json.loads(model.config.to_json_string(use_diff=False))
    config.pop("_name_or_path", None)
    config.pop("auto_map", None)  # set by the first save_pretrained of a custom model: not part of the model
    config["architectures"] = [type(model).__name__]
    config["dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
    return config


def publish_run(recipe, work_dir: Path, checkpoint: Path):
    """What every run ends with: <work_dir>/publish/<name>-<hash>, pushed if the recipe asks."""
    if not recipe.train.publish:
        return None
    published = publish(checkpoint, Path(work_dir) / "publish" / Path(work_dir).name)
    logger.info("published %s", published)
    if recipe.train.push_to_hub:
        push(published.with_suffix(""), recipe.train.push_to_hub)
    return published
