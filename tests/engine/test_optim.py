"""Optimizer parameter groups and LR schedules."""

import pytest
import torch

from hfcls.engine.optim import build_optimizer, build_scheduler
from hfcls.errors import HfclsError
from hfcls.recipe.schema import OptimSection, ScheduleSection


def model():
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.LazyLinear(2)
    )


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
    scheduler = build_scheduler(
        optimizer, ScheduleSection(type="step", steps=[2, 3], gamma=0.1, warmup_steps=2), epochs=4, steps_per_epoch=2
    )
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


def named_model():
    """backbone.* and head.* parameters, like a transformers classifier's base_model and head."""
    net = torch.nn.Module()
    net.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    net.head = torch.nn.Linear(4, 2)
    return net


def test_frozen_prefixes_leave_parameters_out_of_training():
    net = named_model()
    optimizer = build_optimizer(net, OptimSection(type="adamw", frozen=["backbone.0."]))
    assert [n for n, p in net.named_parameters() if not p.requires_grad] == ["backbone.0.weight", "backbone.0.bias"]
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for n, p in net.named_parameters() if not n.startswith("backbone.0.")}


def test_lr_mult_gives_the_backbone_its_own_lr_and_the_schedule_keeps_the_ratio():
    net = named_model()
    optim = OptimSection(type="sgd", lr=1.0, lr_mult={"backbone.": 0.1, "backbone.1.": 0.5}, decay_norm_and_bias=False)
    optimizer = build_optimizer(net, optim)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    params = dict(net.named_parameters())
    assert lr_of[id(params["head.weight"])] == 1.0 and optimizer.param_groups[0]["lr"] == 1.0
    assert lr_of[id(params["backbone.0.weight"])] == pytest.approx(0.1)
    assert lr_of[id(params["backbone.1.weight"])] == pytest.approx(0.5)  # the longest prefix wins
    decay_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert decay_of[id(params["backbone.0.bias"])] == 0.0 and decay_of[id(params["backbone.0.weight"])] > 0
    scheduler = build_scheduler(
        optimizer, ScheduleSection(type="step", steps=[1], gamma=0.1), epochs=2, steps_per_epoch=1
    )
    optimizer.step()
    scheduler.step()
    assert sorted(g["lr"] for g in optimizer.param_groups) == pytest.approx([0.01, 0.01, 0.05, 0.1, 0.1])


@pytest.mark.parametrize("section", [{"frozen": ["backbon."]}, {"lr_mult": {"heda.": 0.1}}])
def test_prefixes_that_match_nothing_are_errors(section):
    with pytest.raises(HfclsError, match=r"no parameter name starts with .*names look like backbone.0.weight"):
        build_optimizer(named_model(), OptimSection(**section))
