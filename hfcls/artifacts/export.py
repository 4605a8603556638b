"""Hugging Face folders: config.json + model.safetensors + preprocessor_config.json, and the weights'
own training record.

The preprocessor reproduces the recipe's eval pipeline, so
`transformers.pipeline("image-classification", model=folder)` predicts what
hfcls evaluates. For a timm model transformers.pipeline reads config.json's
`pretrained_cfg` instead (its TimmWrapperImageProcessor, as timm itself does): an export
writes it from the same processor, so both files describe the preprocessing hfcls ran.
training_record.json says which weights these are: the epoch and optimizer
step they were taken at and their validation metrics, `{"epoch": 3, "step": 120, "metrics":
{"accuracy_top1": 91.2, ...}}`. It is written in the same atomic swap as the weights, so a
folder's record cannot describe other weights, and whatever reads a run's log (model
cards, plots, publish) reads which epoch best/ or latest/ holds here, not from the last
readable line of metrics.jsonl (hfcls.artifacts.describe.training_record reads it).
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

from hfcls.files import publish_folder, publish_links, storage_errors, temporary_folder
from hfcls.recipe.preprocessing import preprocessor_kwargs, timm_data_config
from hfcls.timm_models import is_timm

CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
WEIGHTS_FILE = "model.safetensors"  # in Hugging Face folders and Accelerate checkpoints alike
RECORD_FILE = "training_record.json"

# transformers' image processing is imported where a processor is built: it takes seconds.


def image_processor(data):
    """The exported preprocessing of a recipe's data section, a BitImageProcessor (raises if its eval
    pipeline cannot be exported)."""
    from transformers import BitImageProcessor

    return BitImageProcessor(**preprocessor_kwargs(data.eval_pipeline, data.mean, data.std))


def processor_from_dict(config: dict):
    """A BitImageProcessor from its saved form (preprocessor_config.json, or a published file's metadata)."""
    from transformers import BitImageProcessor

    return BitImageProcessor.from_dict(config)


def save_description(model, processor, folder: Path) -> None:
    """config.json and preprocessor_config.json: what a weights file needs to be used on its own."""
    exported_config(model, processor).save_pretrained(folder)
    processor.save_pretrained(folder)


def exported_config(model, processor):
    """The model's config as an export writes it: for a timm model, with the `pretrained_cfg` of
    `processor`'s preprocessing (hfcls.recipe.preprocessing.timm_data_config)."""
    config = copy.deepcopy(model.config)
    config.architectures = [type(model).__name__]  # as save_pretrained records it
    if is_timm(config):
        config.pretrained_cfg = timm_pretrained_cfg(getattr(config, "pretrained_cfg", None), processor.to_dict())
    return config


def timm_pretrained_cfg(pretrained_cfg: dict | None, processor_config: dict) -> dict:
    """`pretrained_cfg` with its preprocessing replaced by the exported one; its test-time size and crop
    go, as they describe preprocessing the model was not evaluated with."""
    kept = {k: v for k, v in (pretrained_cfg or {}).items() if k not in ("test_input_size", "test_crop_pct")}
    return {**kept, **timm_data_config(processor_config)}


def check_exportable(model, data) -> None:
    """Raise now, before training, if an export of `model` could not describe data.eval_pipeline."""
    kwargs = preprocessor_kwargs(data.eval_pipeline, data.mean, data.std)
    if is_timm(model):
        timm_data_config(kwargs)


def save_hf_folder(model, processor, folder: Path, state_dict: dict | None = None, record: dict | None = None) -> None:
    """Write the folder atomically and durably: a reader sees the old export or the new one, whole.
    `state_dict`: the weights, when the model holds only a shard of them (FSDP); `record`: their
    training record (epoch, step, metrics), written beside them."""
    folder, tmp = Path(folder), temporary_folder(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    with _writing(folder):
        model.save_pretrained(tmp, state_dict=state_dict)
        if is_timm(model):  # its config.json says how transformers.pipeline preprocesses
            exported_config(model, processor).save_pretrained(tmp)
        processor.save_pretrained(tmp)
        if record is not None:
            (tmp / RECORD_FILE).write_text(json.dumps(record, indent=1))
        publish_folder(tmp, folder)


def weights_record(epoch: int, step: int, metrics: dict) -> dict:
    """What training_record.json holds: the weights' epoch, optimizer step and validation metrics."""
    return {"epoch": epoch, "step": step, "metrics": dict(metrics)}


def copy_hf_folder(source: Path, folder: Path) -> None:
    """`folder` made the same export as the finished folder `source`, atomically, its files linked."""
    with _writing(Path(folder)):
        publish_links(source, folder)


def _writing(folder: Path):
    """A full or read-only disk met while `folder` is written: one line, and its temporary folder removed."""
    return storage_errors(
        f"{folder}",
        folder.parent,
        "the earlier files there are intact; free some space (or fix the permissions) and run again",
        cleanup=lambda: shutil.rmtree(temporary_folder(folder), ignore_errors=True),
    )
