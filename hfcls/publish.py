"""`hfcls-publish IN OUT [--date] [--no-ema]`: a release file whose name carries its own hash.

IN is a training checkpoint (`<work_dir>/checkpoints/epoch_N`: Accelerate state
with `model.safetensors`; the run's `recipe.yaml` two levels up) or a Hugging
Face folder. Only the model's weights are kept: the EMA weights when the run
kept an average (train.ema; --no-ema for the raw ones), on the CPU, without
optimizer or scheduler state. Written:

  OUT-<sha256[:8]>.safetensors   the state dict; metadata "hfcls" holds the model
                                 config JSON and class names (MMClassification's
                                 `{name}_{date}-{hash}` form with --date)
  OUT-<sha256[:8]>/              the same model as a Hugging Face folder

`load_published` refuses a file whose content no longer matches its name. Every
training run ends with the same export into `<work_dir>/publish/`.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import pickle
import re
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

import hfcls
from hfcls.errors import HfclsError, cli_entry
from hfcls.export import image_processor, save_hf_folder
from hfcls.hub import push
from hfcls.logs import setup_logging
from hfcls.loading import WEIGHTS, architecture_config, recipe_class_names
from hfcls.recipe import load_recipe

logger = logging.getLogger(__name__)

HASH_CHARS = 8
HASHED_NAME = re.compile(r"-([0-9a-f]{8})\.safetensors$")
METADATA_KEY = "hfcls"  # one key: safetensors writes several in random order, changing the hash


# ----------------------------------------------------------------------------- reading sources


def load_source(source: Path, use_ema: bool = True):
    """(model with the weights to publish, image processor) from a checkpoint or a HF folder."""
    source = Path(source)
    if (source / "config.json").is_file():
        model = AutoModelForImageClassification.from_pretrained(source)
        return model, AutoImageProcessor.from_pretrained(source)
    if (source / WEIGHTS).is_file():
        return load_checkpoint_model(source, use_ema)
    raise HfclsError(f"{source} is neither a Hugging Face folder (config.json) nor a training checkpoint "
                     f"({WEIGHTS}); pass <work_dir>/checkpoints/epoch_N or an exported folder")


def load_checkpoint_model(folder: Path, use_ema: bool):
    work_dir = folder.parent.parent
    recipe_file = work_dir / "recipe.yaml"
    if not recipe_file.is_file():
        raise HfclsError(f"{folder}: no {recipe_file} two levels up; a checkpoint must stay inside its work dir "
                         "(<work_dir>/checkpoints/epoch_N) so the model can be rebuilt from its recipe")
    recipe = load_recipe(recipe_file)
    config = architecture(recipe, work_dir)
    model = AutoModelForImageClassification.from_config(config)
    weights = checkpoint_weights(folder, use_ema)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise HfclsError(f"{folder}: the weights do not fit the recipe's model (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}); was recipe.yaml edited after training?")
    return model, image_processor(recipe.data)


def architecture(recipe, work_dir: Path):
    """The trained model's config: the run's own export if there is one, else its recipe."""
    for export in ("latest", "best"):
        if (work_dir / export / "config.json").is_file():
            return AutoConfig.from_pretrained(work_dir / export)
    return architecture_config(recipe.model, recipe_class_names(recipe))


def checkpoint_weights(folder: Path, use_ema: bool) -> dict:
    """The model's state dict from a checkpoint: the EMA copy when there is one and it is wanted."""
    weights = load_file(folder / WEIGHTS, device="cpu")
    ema = find_ema_state(folder, set(weights)) if use_ema else None
    if ema is None:
        return weights
    logger.info("publishing the EMA weights of %s (--no-ema for the raw ones)", folder)
    return ema


def find_ema_state(folder: Path, model_keys: set) -> dict | None:
    """The EMA weights among the objects Accelerate saved with `register_for_checkpointing`
    (custom_checkpoint_<i>.pkl, i in registration order): the one state dict with exactly
    the model's keys. The scheduler's state, also saved there, has other keys."""
    found = {}
    for path in sorted(folder.glob("custom_checkpoint_*.pkl")):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # holds more than tensors and plain values: not weights
            continue
        if isinstance(state, dict) and set(state) == model_keys:
            found[path.name] = state
    if len(found) > 1:
        raise HfclsError(f"{folder}: several saved states look like model weights ({', '.join(found)}); "
                         "pass --no-ema to publish the raw ones")
    return next(iter(found.values()), None)


# ----------------------------------------------------------------------------- writing


def publish(source, out, date: bool = False, use_ema: bool = True) -> Path:
    """Publish IN to OUT-<hash>.safetensors (+ HF folder); return the file's path."""
    model, processor = load_source(Path(source), use_ema)
    return write_published(model, processor, Path(out), date)


def write_published(model, processor, out: Path, date: bool = False) -> Path:
    out = out.with_name(out.name.removesuffix(".safetensors"))
    stem = f"{out.name}_{datetime.date.today():%Y%m%d}" if date else out.name
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{stem}.tmp.safetensors"
    state = {key: tensor.detach().cpu().clone().contiguous() for key, tensor in model.state_dict().items()}
    save_file(state, tmp, metadata={METADATA_KEY: json.dumps(published_metadata(model), sort_keys=True)})
    final = out.parent / f"{stem}-{file_sha256(tmp)[:HASH_CHARS]}.safetensors"
    tmp.replace(final)
    save_hf_folder(model, processor, final.with_suffix(""))
    return final


def published_metadata(model) -> dict:
    config = model.config
    return {
        "config": portable_config(model),
        "class_names": [config.id2label[i] for i in range(config.num_labels)],
        "hfcls_version": hfcls.__version__,
    }


def portable_config(model) -> dict:
    """The config as save_pretrained records it, minus where it was loaded from: the same
    weights publish to the same bytes (and hash) from any folder or checkpoint."""
    config = json.loads(model.config.to_json_string(use_diff=False))
    config.pop("_name_or_path", None)
    config["architectures"] = [type(model).__name__]
    config["dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
    return config


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------- reading published files


def verify_published(path) -> str:
    """Check that the file's sha256 starts with the hash in its name; return the full digest."""
    path = Path(path)
    match = HASHED_NAME.search(path.name)
    if match is None:
        raise HfclsError(f"{path} is not a published file: its name does not end in -<8 hex digits>.safetensors "
                         "(make one with hfcls-publish)")
    if not path.is_file():
        raise HfclsError(f"published file {path} does not exist")
    digest = file_sha256(path)
    if not digest.startswith(match.group(1)):
        raise HfclsError(f"{path}: its content hashes to {digest[:HASH_CHARS]}, not the {match.group(1)} in its "
                         "name; the file is corrupt or was modified: download or publish it again")
    return digest


def load_published(path):
    """The model in a verified published file, on the CPU, in eval mode."""
    verify_published(path)
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get(METADATA_KEY)
        weights = {key: f.get_tensor(key) for key in f.keys()}
    if raw is None:
        raise HfclsError(f"{path} has no hfcls metadata (model config); publish it with hfcls-publish")
    config_dict = json.loads(raw)["config"]
    try:
        config = AutoConfig.for_model(**config_dict)
    except ValueError:
        raise HfclsError(f"{path}: model_type {config_dict['model_type']!r} is not registered with transformers; "
                         "import the module that defines it first") from None
    model = AutoModelForImageClassification.from_config(config)
    model.load_state_dict(weights, strict=True)
    return model.eval()


# ----------------------------------------------------------------------------- end of training


def publish_run(recipe, work_dir: Path, checkpoint: Path):
    """What every run ends with: <work_dir>/publish/<name>-<hash>, pushed if the recipe asks."""
    if not recipe.train.publish:
        return None
    published = publish(checkpoint, Path(work_dir) / "publish" / Path(work_dir).name)
    logger.info("published %s", published)
    if recipe.train.push_to_hub:
        push(published.with_suffix(""), recipe.train.push_to_hub)
    return published


# ----------------------------------------------------------------------------- command line


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="hfcls-publish", description=__doc__.splitlines()[0])
    parser.add_argument("source", metavar="IN", help="a checkpoints/epoch_N folder or a Hugging Face folder")
    parser.add_argument("out", metavar="OUT", help="output path without the hash, e.g. release/resnet50_in1k")
    parser.add_argument("--date", action="store_true", help="name it OUT_<YYYYMMDD>-<hash> (MMClassification's form)")
    parser.add_argument("--no-ema", dest="use_ema", action="store_false",
                        help="publish the raw weights even when the checkpoint holds EMA weights")
    return parser.parse_args(argv)


@cli_entry
def cli(argv=None):
    args = parse_args(argv)
    setup_logging(None, is_main=True)  # results on stdout; library progress bars off
    print(publish(args.source, args.out, date=args.date, use_ema=args.use_ema))


if __name__ == "__main__":
    cli()
