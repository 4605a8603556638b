"""Optimizer parameter groups and LR schedules."""

import pytest
import torch

from hfcls.errors import HfclsError
from hfcls.optim import build_optimizer, build_scheduler
from hfcls.recipe import OptimSection, ScheduleSection


def model():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                               torch.nn.LazyLinear(2))


def tiny_model():
    net = model()
    net(torch.zeros(1, 3, 5, 5))
    return net


def test_adamw_skips_decay_on_norm_and_bias_by_default():
    optimizer = build_optimizer(tiny_model(), OptimSection(type="adamw", lr=0.1, weight_decay=0.05))
    decay, no_decay = optimizer.param_groups
    assert isinstance(optimizer, torch.optim.AdamW)
    assert decay["weight_decay"] == 0.05 and [p.ndim for p in decay["params"]] == [4, 2]
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 4  # conv bias, bn w/b, fc bias


def test_sgd_decays_everything_by_default_like_mmclassification():
    optimizer = build_optimizer(tiny_model(), OptimSection(type="sgd", nesterov=True))
    assert len(optimizer.param_groups) == 1 and optimizer.param_groups[0]["nesterov"]


def step_lrs(scheduler, optimizer, steps):
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_step_schedule_decays_at_listed_epochs_after_warmup():
    optimizer = build_optimizer(tiny_model(), OptimSection(lr=1.0))
    scheduler = build_scheduler(optimizer, ScheduleSection(type="step", steps=[2, 3], gamma=0.1, warmup_steps=2),
                                epochs=4, steps_per_epoch=2)
    assert step_lrs(scheduler, optimizer, 8) == pytest.approx([0.5, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])


def test_cosine_with_warmup_epochs_uses_transformers_schedule():
    optimizer = build_optimizer(tiny_model(), OptimSection(lr=1.0))
    scheduler = build_scheduler(optimizer, ScheduleSection(type="cosine", warmup_epochs=1), epochs=3, steps_per_epoch=2)
    lrs = step_lrs(scheduler, optimizer, 6)
    assert lrs[:3] == pytest.approx([0.0, 0.5, 1.0])
    assert lrs[3] < 1.0 and lrs[5] < lrs[4]


def test_unknown_schedule_suggests_one():
    optimizer = build_optimizer(tiny_model(), OptimSection())
    with pytest.raises(HfclsError, match='did you mean "cosine"'):
        build_scheduler(optimizer, ScheduleSection(type="cosin"), epochs=1, steps_per_epoch=1)
