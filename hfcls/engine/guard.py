"""The NaN guard: no checkpoint or export ever holds weights trained on a non-finite loss.

`train.max_bad_steps: 0` (the default) stops at the first non-finite loss
without a host-device sync per step: each step's loss and its non-finite flag
(agreed by all processes) stay on the device until `checked` fetches them all
in one transfer, at log intervals and before anything is evaluated or saved.
Steps after a bad one train on NaN weights, but nothing from them is kept.

`train.max_bad_steps: N > 0` skips a step whose loss is not finite, which
needs the value before the update: one read-back per step; it stops after N.
"""

from __future__ import annotations

import logging
import math

import torch

from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)


class NanGuard:
    def __init__(self, accelerator, state, max_bad_steps: int, last_checkpoint=None):
        self.accelerator, self.state, self.max_bad_steps = accelerator, state, max_bad_steps
        self.last_checkpoint = last_checkpoint  # the last good one, which its errors name: the loop keeps it current
        self.losses, self.flags, self.places = [], [], []
        self.where = ""  # the step being trained, for messages

    def at(self, batch_index: int) -> NanGuard:
        self.where = f"epoch {self.state.epoch + 1}, batch {batch_index + 1}, optimizer step {self.state.step + 1}"
        return self

    def admits(self, loss) -> bool:
        """Whether this step may update the weights."""
        loss = loss.detach()
        # Every process must skip together (their gradients are all-reduced): the verdict is reduced.
        flag = self.accelerator.reduce((~torch.isfinite(loss)).float(), reduction="sum")
        if not self.max_bad_steps:
            self.losses.append(loss)
            self.flags.append(flag)
            self.places.append(self.where)
            return True
        if not flag.item():
            return True
        self.state.bad_steps += 1
        if self.state.bad_steps > self.max_bad_steps:
            raise self.error(loss.item(), self.where)
        logger.warning(
            "non-finite loss at %s: step skipped (%d of train.max_bad_steps=%d)",
            self.where,
            self.state.bad_steps,
            self.max_bad_steps,
        )
        return False

    def checked(self, running) -> float:
        """The running loss sum, after raising on any non-finite loss recorded since the last check."""
        if self.max_bad_steps:
            return running.item()
        count = len(self.flags)
        values = torch.stack([running.float(), *self.losses, *self.flags]).tolist()
        losses, flags = values[1 : 1 + count], values[1 + count :]
        first = next(((loss, where) for loss, bad, where in zip(losses, flags, self.places) if bad), None)
        self.losses, self.flags, self.places = [], [], []
        if first is not None:
            self.state.bad_steps += 1
            raise self.error(*first)
        return values[0]

    def error(self, loss: float, where: str) -> HfclsError:
        shown = loss if not math.isfinite(loss) else "non-finite on another process"
        return HfclsError(
            f"loss is {shown} at {where} ({self.state.bad_steps} non-finite so far, train.max_bad_steps="
            f"{self.max_bad_steps}); last good checkpoint: {self.last_checkpoint or 'none yet'}. Lower optim.lr, "
            "set train.clip_grad_norm, or raise train.max_bad_steps; then --resume-from auto or start over"
        )
