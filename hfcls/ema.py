"""Exponential moving average of the model weights (`train.ema: {decay, every_n_steps}`).

The average lives in its own copy of the model, so it can be evaluated and
exported like any model; it is saved in checkpoints through
`accelerator.register_for_checkpointing`.
"""

from __future__ import annotations

import copy

import torch

from hfcls.errors import HfclsError

DEFAULTS = {"decay": 0.9998, "every_n_steps": 1}


def ema_settings(ema: dict | None) -> dict | None:
    if ema is None:
        return None
    unknown = set(ema) - set(DEFAULTS)
    if unknown:
        raise HfclsError(f"train.ema: unknown key(s) {', '.join(sorted(unknown))}; known: decay, every_n_steps")
    settings = {**DEFAULTS, **ema}
    if not 0 < settings["decay"] < 1:
        raise HfclsError(f"train.ema.decay must be between 0 and 1, got {settings['decay']}")
    if int(settings["every_n_steps"]) < 1:
        raise HfclsError(f"train.ema.every_n_steps must be at least 1, got {settings['every_n_steps']}")
    return settings


class ModelEma:
    """ema = decay * ema + (1 - decay) * weights, every `every_n_steps` optimizer steps.

    Buffers (BatchNorm statistics) are copied, not averaged, as timm does.
    """

    def __init__(self, model: torch.nn.Module, decay: float, every_n_steps: int = 1):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.every_n_steps = decay, int(every_n_steps)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        if step % self.every_n_steps:
            return
        for ema, raw in zip(self.module.parameters(), model.parameters()):
            ema.lerp_(raw.detach(), 1 - self.decay)
        for ema, raw in zip(self.module.buffers(), model.buffers()):
            ema.copy_(raw)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
