"""Exponential moving average of the model weights (`train.ema: {decay, every_n_steps, warmup, warmup_power}`,
checked and completed with its defaults when the recipe loads, `hfcls.recipe.settings`).

The average lives in its own copy of the model, so it can be evaluated and
exported like any model; checkpoints keep it in its own file (ema.safetensors).

Warm-up (on by default, timm's ModelEmaV3): at optimizer step t the decay is
1 - t**-warmup_power (t counted from the first update, 0 at the first), capped
at `decay`. A fixed decay of 0.9998 would still hold 46 % of the random
initial weights after 3,910 steps; with warm-up the average forgets them
within a few hundred.
"""

from __future__ import annotations

import copy

import torch


def ema_decay(step: int, decay: float, warmup: bool = True, warmup_power: float = 2 / 3) -> float:
    """The decay used by the update after optimizer step `step` (1 = the first)."""
    if not warmup:
        return decay
    since_first = step - 1
    if since_first <= 0:
        return 0.0
    return min(decay, 1 - (1 + since_first) ** -warmup_power)


class ModelEma:
    """ema = decay * ema + (1 - decay) * weights, every `every_n_steps` optimizer steps.

    Buffers (BatchNorm statistics) are copied, not averaged, as timm does.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        decay: float,
        every_n_steps: int = 1,
        warmup: bool = True,
        warmup_power: float = 2 / 3,
    ):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.every_n_steps = decay, int(every_n_steps)
        self.warmup, self.warmup_power = warmup, warmup_power

    def decay_at(self, step: int) -> float:
        return ema_decay(step, self.decay, self.warmup, self.warmup_power)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        if step % self.every_n_steps:
            return
        weight = 1 - self.decay_at(step)
        for ema, raw in zip(self.module.parameters(), model.parameters()):
            ema.lerp_(raw.detach(), weight)
        for ema, raw in zip(self.module.buffers(), model.buffers()):
            ema.copy_(raw)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
