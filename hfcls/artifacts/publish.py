"""Release files whose name carries their own hash (MMClassification's `publish_model`).

Only the model's weights are kept: the EMA weights when the source holds an
average (what the run evaluated), on the CPU, without optimizer or scheduler state.

  OUT-<sha256[:8]>.safetensors   the state dict; metadata "hfcls" holds the model config,
                                 class names and eval preprocessing, so the file is used on its own
                                 (MMClassification's `{name}_{date}-{hash}` form with date=True), and
                                 "format": "pt", as transformers' and timm's writers mark PyTorch tensors
  OUT-<sha256[:8]>/              the same model as a Hugging Face folder

Every training run ends with the same export into `<work_dir>/publish/`.
"""

from __future__ import annotations

import datetime
import json
import logging
from pathlib import Path

from hfcls.artifacts.describe import preprocessor, training_record
from hfcls.artifacts.export import image_processor, save_hf_folder
from hfcls.artifacts.loading import load_model
from hfcls.artifacts.run_dir import HASH_CHARS, METADATA_KEY
from hfcls.artifacts.weights import file_sha256
from hfcls.files import check_output, publish_file, storage_errors
from hfcls.version import __version__

logger = logging.getLogger(__name__)


def publish(
    source, out, *, date: bool = False, use_ema: bool | None = None, recipe=None, overwrite: bool = False
) -> Path:
    """Publish any artifact to OUT-<hash>.safetensors (+ Hugging Face folder); return the file's path.
    A bare weights file needs the `recipe` it was trained with. A file or folder of that name already
    there is refused unless `overwrite` (the same weights publish to the same name)."""
    model = load_model(source, use_ema=use_ema, recipe=recipe)
    processor, record = preprocessor(source, recipe), training_record(source)
    return write_published(model, processor, Path(out), date, overwrite, record=record)


def write_published(
    model,
    processor,
    out: Path,
    date: bool = False,
    overwrite: bool = False,
    state_dict: dict | None = None,
    record: dict | None = None,
) -> Path:
    """`model` (its weights `state_dict` where it holds only a shard of them) as OUT-<hash>.safetensors
    and a Hugging Face folder of the same name, which carries the weights' training `record`. The
    record stays out of the hashed file: the same weights publish to the same bytes from any form."""
    from safetensors.torch import save_file

    out = out.with_name(out.name.removesuffix(".safetensors"))
    stem = f"{out.name}_{datetime.date.today():%Y%m%d}" if date else out.name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{stem}.tmp.safetensors"
    weights = model.state_dict() if state_dict is None else state_dict
    state = {key: tensor.detach().cpu().clone().contiguous() for key, tensor in weights.items()}
    metadata = json.dumps(published_metadata(model, processor), sort_keys=True)
    with storage_errors(
        f"{out}-<hash>.safetensors",
        out.parent,
        "nothing was published; free some space (or fix the permissions) and run again",
        cleanup=lambda: tmp.unlink(missing_ok=True),
    ):
        save_file(state, tmp, metadata={METADATA_KEY: metadata, "format": "pt"})
        sort_metadata(tmp)
        digest = file_sha256(tmp)
        final = out.parent / f"{stem}-{digest[:HASH_CHARS]}.safetensors"
        check_republish(final, overwrite)
        publish_file(tmp, final)
    save_hf_folder(model, processor, final.with_suffix(""), state_dict, record)
    return final


def sort_metadata(path: Path) -> None:
    """Put a .safetensors file's metadata keys in sorted order, in place. safetensors writes them in the
    order of a Rust hash map, which changes from call to call once there are two (format, hfcls): the
    same weights must give the same bytes, whose hash names the file. The header keeps its length (the
    same entries, reordered), so the tensors after it stay where they are."""
    with open(path, "r+b") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > size:  # cannot happen for safetensors' compact JSON; never write a broken header
            raise RuntimeError(f"{path}: the sorted safetensors header is longer than the original")
        f.seek(8)
        f.write(text.ljust(size))


def check_republish(final: Path, overwrite: bool) -> None:
    """The output rule (hfcls.files.check_output) on the published file and its folder: the hash is
    known only now, the first moment their names can be checked, still before either is written."""
    for path, kind in ((final, "file"), (final.with_suffix(""), "folder")):
        check_output(path, overwrite, kind=kind, what="out: the published", param="out")


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


def publish_run(recipe, work_dir: Path, model, state_dict: dict | None = None):
    """What every run ends with: the `model` it evaluated last (in memory; its weights `state_dict` where
    it holds only a shard of them) as <work_dir>/publish/<name>-<hash>, pushed if the recipe asks."""
    if not recipe.train.publish:
        return None
    # publish/ is the run's own: a resumed run publishes again over what a killed one began.
    out = Path(work_dir) / "publish" / Path(work_dir).name
    record = training_record(Path(work_dir) / "latest")  # the weights latest/ was given last: `model`'s
    published = write_published(
        model, image_processor(recipe.data), out, overwrite=True, state_dict=state_dict, record=record
    )
    logger.info("published %s", published)
    if recipe.train.push_to_hub:
        from hfcls.artifacts.hub import push  # huggingface_hub's client: imported by the runs that push

        push(published.with_suffix(""), recipe.train.push_to_hub)
    return published
