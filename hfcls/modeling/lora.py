"""LoRA (Hu et al. 2021) through peft: `model.lora` adapts a classifier, and every export merges it back.

A LoRA model is peft's `PeftModel` around the transformers classifier: each adapted module gets a
low-rank update B·A scaled by alpha / r, the head is trained whole (peft's `modules_to_save`), and
every other weight is frozen. Training, validation, checkpoints and resume use that model as it is.
The way out to a file, `merged`, folds the updates into the weights (peft's `merge_and_unload`) on a
copy, so every export is a plain transformers model that loads where peft is not installed.

Default target modules, by what the model is made of:

- attention models (ViT, DeiT, Swin, BEiT, ...): the query and value projections (q_proj and v_proj in
  transformers 5, query and value before it), the LoRA paper's choice and MMPretrain's for ViTs;
- convolutional networks (ResNet, RegNet, ConvNeXt, MobileNet, EfficientNet, hfcls's own): every
  convolution with groups=1 and every linear layer outside the head. They have no attention to adapt,
  and those layers (ConvNeXt's pointwise ones included) hold nearly all the weights. Depthwise
  (grouped) convolutions are left out: a low-rank update of their k x k weights per channel saves
  nothing, and peft cannot merge one back for export.
"""

from __future__ import annotations

import copy
import logging
import warnings

import torch

from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"  # peft's name for a LoraConfig saved in a folder
ATTENTION_PAIRS = (("q_proj", "v_proj"), ("query", "value"))
ADAPTABLE = (torch.nn.Linear, torch.nn.Conv2d)
SHOWN_NAMES = 16


def peft_package(why: str = "model.lora"):
    try:
        import peft
    except ImportError:
        raise HfclsError(f"{why} needs peft, which is not installed: pip install 'hfcls[lora]'") from None
    return peft


def is_lora(model) -> bool:
    """Whether `model` carries LoRA adapters (a peft model), without importing peft."""
    return getattr(model, "peft_config", None) is not None


def add_lora(model, settings: dict):
    """`model` with LoRA adapters on the target modules and its head trained whole (model.lora's
    finished settings); logs the trainable and total parameter counts."""
    peft = peft_package()
    head = head_modules(model)
    targets = target_modules(model, settings["target_modules"], head)
    config = peft.LoraConfig(
        r=settings["r"],
        lora_alpha=settings["alpha"],
        lora_dropout=settings["dropout"],
        target_modules=targets,
        modules_to_save=head,
    )
    size = sum(param.numel() for param in model.parameters())
    adapted = with_adapters(peft, model, config)
    log_sizes(adapted, settings, head, size)
    return adapted


def with_adapters(peft, model, config):
    """peft's get_peft_model. It asks transformers 5 a deprecated question (is_gradient_checkpointing): the
    FutureWarning is peft's to fix, not the user's to read at every run."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        return peft.get_peft_model(model, config)


def log_sizes(adapted, settings: dict, head: list, size: int) -> None:
    """What LoRA trains, against the size of the model it adapts (peft's own count has the head twice)."""
    trainable = {name: param.numel() for name, param in adapted.named_parameters() if param.requires_grad}
    adapters = sum(count for name, count in trainable.items() if ".lora_" in name)
    logger.info(
        "LoRA r=%d alpha=%g on %d modules (%s): %s parameters trained (%s in the adapters, %s in the head %s), "
        "%.2f %% of the model's %s",
        settings["r"],
        settings["alpha"],
        len(adapted_modules(adapted)),
        ", ".join(short_names(adapted_modules(adapted))),
        f"{sum(trainable.values()):,}",
        f"{adapters:,}",
        f"{sum(trainable.values()) - adapters:,}",
        ", ".join(head),
        100 * sum(trainable.values()) / size,
        f"{size:,}",
    )


def merged(model):
    """The plain transformers model to export: a LoRA model's updates folded into a copy of its weights
    (the model trained on is left as it was); any other model as it is."""
    if not is_lora(model):
        return model
    return copy.deepcopy(model).merge_and_unload()


def plain_view(model):
    """The transformers model inside a LoRA model (its class and config describe the export); any other
    model itself."""
    return model.get_base_model() if is_lora(model) else model


def save_adapter_config(model, folder) -> None:
    """adapter_config.json: what a reader needs to rebuild the adapters of a checkpoint's weights."""
    model.peft_config["default"].save_pretrained(str(folder))


def merge_saved(model, folder, state: dict, where: str):
    """`model` (a plain classifier of the checkpoint's config) given the adapters of `folder`'s
    adapter_config.json and the LoRA weights `state`, then merged: a plain model."""
    peft = peft_package(f"{where} holds LoRA adapters ({ADAPTER_CONFIG}); reading it")
    adapted = with_adapters(peft, model, peft.LoraConfig.from_pretrained(str(folder)))
    try:
        problems = adapted.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shapes that differ (another rank r) are raised even when not strict
        shapes = next((line.strip() for line in str(error).splitlines() if "size mismatch" in line), str(error))
        raise HfclsError(
            f"{where}: its weights do not match its {ADAPTER_CONFIG} ({shapes}); the checkpoint is damaged"
        ) from None
    if problems.missing_keys or problems.unexpected_keys:
        key = (problems.missing_keys or problems.unexpected_keys)[0]
        raise HfclsError(
            f"{where}: its weights do not match its {ADAPTER_CONFIG} ({len(problems.missing_keys)} missing, "
            f"{len(problems.unexpected_keys)} unexpected tensors, e.g. {key}); the checkpoint is damaged"
        )
    return adapted.merge_and_unload()


# ----------------------------------------------------------------------------- which modules


def head_modules(model) -> list:
    """The names of the modules that make the head, trained whole: `classifier`, or a timm model's own."""
    if isinstance(getattr(model, "classifier", None), torch.nn.Module):
        return ["classifier"]
    timm_model = getattr(model, "timm_model", None)
    name = getattr(timm_model, "pretrained_cfg", {}).get("classifier") if timm_model is not None else None
    if name:
        return [f"timm_model.{name}"]
    raise HfclsError(
        f"model.lora: {model.config.model_type} has no head module hfcls knows (`classifier`, or a timm "
        "model's pretrained_cfg classifier) to train whole; LoRA needs one"
    )


def target_modules(model, names: list | None, head: list) -> list:
    """model.lora.target_modules checked against the model (each matches a module of a kind LoRA adapts and
    peft merges, outside the head), or the default for its family (module docstring)."""
    candidates = adaptable_modules(model, head)
    if names is None:
        return default_targets(candidates)
    modules = dict(model.named_modules())
    for name in names:
        matched = [full for full in modules if full == name or full.endswith(f".{name}")]
        if not matched:
            raise HfclsError(
                f"model.lora.target_modules: {name!r} matches no module of {model.config.model_type}; "
                f"modules LoRA can adapt: {', '.join(short_names(candidates))}"
            )
        refused = [full for full in matched if full not in candidates]
        if refused:
            raise HfclsError(
                f"model.lora.target_modules: {name!r} matches {refused[0]}, "
                f"{why_not_adaptable(model, modules[refused[0]], refused[0], head)}; "
                f"modules LoRA can adapt: {', '.join(short_names(candidates))}"
            )
    return list(names)


def adaptable_modules(model, head: list) -> list:
    """Full names of the modules LoRA may adapt: linear layers and ungrouped convolutions outside the head."""
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, ADAPTABLE) and why_not_adaptable(model, module, name, head) is None
    ]


def why_not_adaptable(model, module, name: str, head: list) -> str | None:
    if in_head(name, head):
        return "part of the head, which is trained whole"
    if not isinstance(module, ADAPTABLE):
        return f"a {type(module).__name__}, not a linear or convolution layer"
    if isinstance(module, torch.nn.Conv2d) and module.groups != 1:
        return f"a convolution with groups={module.groups}, which peft cannot merge back for export"
    if isinstance(module, torch.nn.Conv2d) and getattr(model.config, "tf_padding", False):
        # MobileNet's TensorFlow padding reads each convolution's stride, which peft's LoRA layer lacks.
        return "a convolution of a model with tf_padding: true, which reads settings peft's LoRA layer hides"
    return None


def in_head(name: str, head: list) -> bool:
    return any(name == part or name.startswith(f"{part}.") for part in head)


def default_targets(candidates: list) -> list:
    """The query and value projections of an attention model; else every adaptable module."""
    last = {name.rsplit(".", 1)[-1] for name in candidates}
    for pair in ATTENTION_PAIRS:
        if set(pair) <= last:
            return list(pair)
    if not candidates:
        raise HfclsError("model.lora: the model has no linear or convolution layer outside its head to adapt")
    return candidates


def adapted_modules(adapted) -> list:
    return [name for name, module in adapted.named_modules() if hasattr(module, "lora_A") and module.lora_A]


def short_names(full_names: list) -> list:
    """Module names as target_modules may give them: the last part (two when the last is an index),
    each once, the first SHOWN_NAMES of them."""
    shorts = []
    for name in full_names:
        parts = name.split(".")
        short = ".".join(parts[-2:]) if parts[-1].isdigit() and len(parts) > 1 else parts[-1]
        if short not in shorts:
            shorts.append(short)
    return shorts[:SHOWN_NAMES] + ([f"... ({len(shorts)} in all)"] if len(shorts) > SHOWN_NAMES else [])
