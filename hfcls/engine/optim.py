"""Recipe.optim / Recipe.schedule -> optimizer and per-step LR scheduler."""

from __future__ import annotations

import bisect

import torch
from transformers import SchedulerType, get_scheduler

from hfcls.engine.layer_decay import layer_scales
from hfcls.errors import HfclsError, did_you_mean
from hfcls.recipe.schema import TORCH_OPTIMIZERS
from hfcls.timm_models import require_timm


def check_prefix(prefix: str, names: list, key: str) -> None:
    if not any(name.startswith(prefix) for name in names):
        raise HfclsError(
            f"{key}: no parameter name starts with {prefix!r}; names look like "
            f"{', '.join(names[:3])} (the keys of model.safetensors)"
        )


def param_groups(
    model: torch.nn.Module,
    weight_decay: float,
    decay_norm_and_bias: bool,
    lr: float,
    lr_mult: dict,
    layer_scale: dict | None = None,
) -> list:
    """Trainable parameters grouped by weight decay (none on biases and norm parameters,
    which are 1-D, unless asked) and by LR: lr x the longest matching lr_mult prefix's factor x
    the parameter's `layer_scale` (layer decay). Groups at the base LR first."""
    names = [name for name, _ in model.named_parameters()]
    for prefix in lr_mult:
        check_prefix(prefix, names, "optim.lr_mult")
    groups: dict = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = param.ndim > 1 or decay_norm_and_bias
        mult = max(((len(p), m) for p, m in lr_mult.items() if name.startswith(p)), default=(0, 1.0))[1]
        factor = mult * (layer_scale or {}).get(name, 1.0)
        groups.setdefault((factor != 1.0, not decay, factor), []).append(param)
    return [
        {"params": params, "weight_decay": weight_decay if not no_decay else 0.0, "lr": lr * factor}
        for (_, no_decay, factor), params in sorted(groups.items(), key=lambda item: item[0])
    ]


def build_optimizer(model: torch.nn.Module, optim) -> torch.optim.Optimizer:
    """The recipe's optimizer over the trainable parameters (optim.frozen's were left out:
    hfcls.engine.adapt), in hfcls's parameter groups."""
    decay_norm_and_bias = optim.decay_norm_and_bias
    if decay_norm_and_bias is None:
        decay_norm_and_bias = optim.type == "sgd"
    scales = layer_scales(model, optim.layer_decay) if optim.layer_decay is not None else None
    groups = param_groups(model, optim.weight_decay, decay_norm_and_bias, optim.lr, optim.lr_mult, scales)
    if optim.type not in TORCH_OPTIMIZERS:
        return timm_optimizer(groups, optim)
    # Fused kernels (CPU and CUDA): one pass over all tensors instead of a Python loop
    # (the digits model's AdamW step: 1.5 -> 0.7 ms on CPU); under an fp16 GradScaler
    # they also skip an inf step without reading the check back to the host.
    if optim.type == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov, fused=True)
    cls = torch.optim.AdamW if optim.type == "adamw" else torch.optim.Adam
    return cls(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps, fused=True)


def timm_optimizer(groups: list, optim) -> torch.optim.Optimizer:
    """One of timm.optim.create_optimizer_v2's optimizers over hfcls's groups (their LRs and weight
    decays kept), with optim.momentum, betas and eps where it takes them, and optim.optimizer_kwargs."""
    require_timm(f"optim.type {optim.type} (an optimizer of timm's)")
    from timm.optim import create_optimizer_v2, get_optimizer_info

    info = get_optimizer_info(optim.type.split("_")[-1])  # lookahead_<name> wraps <name>
    kwargs = {"eps": optim.eps} if info.has_eps else {}
    if info.has_betas and info.num_betas == len(optim.betas):  # Adan's three come in optimizer_kwargs
        kwargs["betas"] = tuple(optim.betas)
    kwargs.update(optim.optimizer_kwargs)
    try:
        return create_optimizer_v2(
            groups, optim.type, lr=optim.lr, weight_decay=optim.weight_decay, momentum=optim.momentum, **kwargs
        )
    except (ImportError, AssertionError) as error:  # bitsandbytes' and apex's: their package, and CUDA, asserted
        raise HfclsError(f"optim.type {optim.type}: {str(error).splitlines()[0]}") from None
    except TypeError as error:
        raise HfclsError(
            f"optim.optimizer_kwargs {optim.optimizer_kwargs}: timm's {optim.type} refuses them ({error})"
        ) from None


def build_scheduler(optimizer, schedule, epochs: int, steps_per_epoch: int):
    """A LambdaLR-style scheduler stepped once per optimizer step."""
    total = epochs * steps_per_epoch
    warmup = schedule.warmup_steps or round(schedule.warmup_epochs * steps_per_epoch)
    if schedule.type == "step":
        milestones = sorted(int(epoch) * steps_per_epoch for epoch in schedule.steps)

        def factor(step):
            warm = min(1.0, (step + 1) / warmup) if warmup else 1.0
            return warm * schedule.gamma ** bisect.bisect_right(milestones, step)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    known = [t.value for t in SchedulerType] + ["step"]
    if schedule.type not in known:
        raise HfclsError(
            f"schedule.type {schedule.type!r} is unknown{did_you_mean(schedule.type, known)}; known: {', '.join(known)}"
        )
    try:
        return get_scheduler(
            schedule.type,
            optimizer,
            num_warmup_steps=warmup,
            num_training_steps=total,
            scheduler_specific_kwargs=schedule.scheduler_kwargs or None,
        )
    except (TypeError, ValueError) as error:  # e.g. a keyword the schedule does not take
        raise HfclsError(
            f"schedule.scheduler_kwargs {schedule.scheduler_kwargs}: transformers' {schedule.type} "
            f"schedule refuses them ({error})"
        ) from None
