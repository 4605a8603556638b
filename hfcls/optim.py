"""Recipe.optim / Recipe.schedule -> optimizer and per-step LR scheduler."""

from __future__ import annotations

import bisect

import torch
from transformers import SchedulerType, get_scheduler

from hfcls.errors import HfclsError, did_you_mean


def param_groups(model: torch.nn.Module, weight_decay: float, decay_norm_and_bias: bool) -> list:
    """Two groups: weights with decay; biases and norm parameters (1-D) without, unless asked."""
    decay, no_decay = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim <= 1 and not decay_norm_and_bias else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: torch.nn.Module, optim) -> torch.optim.Optimizer:
    decay_norm_and_bias = optim.decay_norm_and_bias
    if decay_norm_and_bias is None:
        decay_norm_and_bias = optim.type == "sgd"
    groups = param_groups(model, optim.weight_decay, decay_norm_and_bias)
    if optim.type == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov)
    cls = torch.optim.AdamW if optim.type == "adamw" else torch.optim.Adam
    return cls(groups, lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps)


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
        raise HfclsError(f"schedule.type {schedule.type!r} is unknown{did_you_mean(schedule.type, known)}; "
                         f"known: {', '.join(known)}")
    return get_scheduler(
        schedule.type,
        optimizer,
        num_warmup_steps=warmup,
        num_training_steps=total,
        scheduler_specific_kwargs=schedule.scheduler_kwargs or None,
    )
