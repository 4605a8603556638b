"""Optimizer parameter groups and LR schedules; timm's optimizers over hfcls's groups, each resuming exactly."""

import io
import sys

import pytest
import torch

from hfcls.engine.optim import build_optimizer, build_scheduler
from hfcls.errors import HfclsError
from hfcls.recipe.schema import OPTIMIZERS, TIMM_OPTIMIZERS, OptimSection, ScheduleSection


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


def test_lr_mult_prefixes_that_match_nothing_are_errors():
    with pytest.raises(HfclsError, match=r"^optim.lr_mult: no parameter name starts with .*names look like backbone"):
        build_optimizer(named_model(), OptimSection(lr_mult={"heda.": 0.1}))


# ----------------------------------------------------------------------------- timm's optimizers

NEED_CUDA = tuple(name for name in TIMM_OPTIMIZERS if name.startswith(("bnb", "fused")))  # bitsandbytes, apex
RUN_HERE = [name for name in OPTIMIZERS if name not in NEED_CUDA] + ["lookahead_lamb"]


def small_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(4 * 9, 3)
    )


def train_steps(net, optimizer, steps: int, seed: int | None = None):
    if seed is not None:  # a resumed run restores torch's RNG: kron draws from it
        torch.manual_seed(seed)
    x, y = torch.randn(6, 3, 5, 5, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0, 1, 2])
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        optimizer.step()


@pytest.mark.parametrize("name", RUN_HERE)
def test_every_optimizer_resumes_exactly(name):
    """Two steps, the state saved and read back as Accelerate does (torch.load, weights_only), two more:
    bit-identical to four steps in one go. Eager (no torch.compile of kron's kernels): seconds saved."""
    optim = OptimSection(type=name, lr=0.01, weight_decay=0.01, layer_decay=None)
    with torch.compiler.set_stance("force_eager"):
        net, resumed = small_net(), small_net()
        optimizer = build_optimizer(net, optim)
        train_steps(net, optimizer, 2)
        saved = io.BytesIO()
        torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict()}, saved)
        saved.seek(0)
        state = torch.load(saved, weights_only=True)
        resumed.load_state_dict(state["model"])
        resumed_optimizer = build_optimizer(resumed, optim)
        resumed_optimizer.load_state_dict(state["optimizer"])
        train_steps(net, optimizer, 2, seed=1)
        train_steps(resumed, resumed_optimizer, 2, seed=1)
    after, again = net.state_dict(), resumed.state_dict()
    assert all(torch.equal(after[k], again[k]) for k in after)
    assert not torch.equal(after["3.weight"], small_net().state_dict()["3.weight"])  # it trained


def test_timm_optimizers_keep_hfcls_groups_and_take_their_own_keywords():
    net = named_model()
    optim = OptimSection(
        type="adan", lr=0.5, weight_decay=0.02, lr_mult={"backbone.": 0.1}, optimizer_kwargs={"betas": [0.9, 0.9, 0.9]}
    )
    optimizer = build_optimizer(net, optim)
    assert type(optimizer).__name__ == "Adan"
    assert sorted((g["lr"], g["weight_decay"]) for g in optimizer.param_groups) == pytest.approx(
        [(0.05, 0.0), (0.05, 0.02), (0.5, 0.0), (0.5, 0.02)]
    )
    assert optimizer.param_groups[0]["betas"] == [0.9, 0.9, 0.9]
    lamb = build_optimizer(named_model(), OptimSection(type="lamb", betas=[0.8, 0.9], eps=1e-6))
    assert lamb.param_groups[0]["betas"] == (0.8, 0.9) and lamb.param_groups[0]["eps"] == 1e-6


def test_a_keyword_the_optimizer_refuses_is_one_line():
    with pytest.raises(HfclsError, match=r"^optim.optimizer_kwargs \{'bogus': 1\}: timm's lion refuses them"):
        build_optimizer(named_model(), OptimSection(type="lion", optimizer_kwargs={"bogus": 1}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="bitsandbytes and apex run on CUDA")
@pytest.mark.parametrize("name", ["bnbadamw8bit", "fusedlamb"])
def test_cuda_only_optimizers_are_refused_on_the_cpu(name):
    with pytest.raises(HfclsError, match=rf"^optim.type {name}: CUDA required for"):
        build_optimizer(named_model(), OptimSection(type=name))


def test_timm_optimizers_without_timm_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # as if not installed: `import timm` raises ImportError
    with pytest.raises(HfclsError, match=r'^optim.type lamb \(an optimizer of timm.s\) needs timm.*"hfcls\[timm\]"'):
        build_optimizer(named_model(), OptimSection(type="lamb"))
