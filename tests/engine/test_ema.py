"""train.ema: the decay it uses step by step (timm's ModelEmaV3 warm-up), its settings, and its update."""

import pytest
import torch

from hfcls.engine.ema import ModelEma, ema_decay


def test_warmup_starts_from_the_weights_and_rises_towards_the_decay():
    assert ema_decay(1, 0.9998) == 0.0  # the first update copies the weights
    assert ema_decay(2, 0.9998) == pytest.approx(1 - 2 ** (-2 / 3))
    assert ema_decay(10_000, 0.9998) == pytest.approx(1 - 10_000 ** (-2 / 3))  # 0.99785, still below the cap
    assert ema_decay(10_000, 0.99) == 0.99  # capped
    assert ema_decay(10_000, 0.9998, warmup=False) == 0.9998
    decays = [ema_decay(step, 0.9998) for step in range(1, 5000)]
    assert decays == sorted(decays)


def test_a_warm_ema_forgets_the_initial_weights():
    """The bug this fixes: with a fixed decay of 0.9998, 3,910 steps kept 46 % of the random init."""
    keep_fixed = keep_warm = 1.0
    for step in range(1, 3911):
        keep_fixed *= ema_decay(step, 0.9998, warmup=False)
        keep_warm *= ema_decay(step, 0.9998)
    assert keep_fixed == pytest.approx(0.458, abs=0.001)
    assert keep_warm == 0.0


def test_update_follows_the_decay_of_its_step_and_copies_buffers():
    model = torch.nn.BatchNorm1d(2)
    ema = ModelEma(model, decay=0.5, warmup=False)
    with torch.no_grad():
        model.weight.fill_(3.0)
        model.running_mean.fill_(7.0)
    ema.update(model, step=1)
    assert torch.allclose(ema.module.weight, torch.full((2,), 2.0))  # 0.5 * 1 + 0.5 * 3
    assert torch.equal(ema.module.running_mean, torch.full((2,), 7.0))
    warm = ModelEma(torch.nn.BatchNorm1d(2), decay=0.5)
    warm.update(model, step=1)
    assert torch.equal(warm.module.weight, model.weight)  # decay 0 at step 1
    sparse = ModelEma(torch.nn.BatchNorm1d(2), decay=0.5, every_n_steps=2, warmup=False)
    sparse.update(model, step=1)  # not a multiple of 2: no update
    assert torch.equal(sparse.module.weight, torch.ones(2))
