"""SIGTERM / SIGINT (Slurm preemption, Ctrl-C): finish the step, save, stop.

The handler only records the signal; the loop asks `should_stop` at each
optimizer-step boundary. All processes must agree to stop at the same step
(a checkpoint save is collective), so the flag is reduced across them.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading

import torch

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(Exception):
    """Raised by the loop after the checkpoint of an interrupted run is saved."""

    def __init__(self, signum: int, step: int, checkpoint, work_dir):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        super().__init__(
            f"training stopped by {signal.Signals(signum).name} after step {step}; checkpoint saved to "
            f"{checkpoint}. Resume with the same command plus --resume-from auto (work dir {work_dir})"
        )


class StopRequest:
    """Records the first stop signal; a second one exits at once, the usual Ctrl-C contract."""

    def __init__(self):
        self.signum = 0

    def _handle(self, signum, frame):
        if self.signum:
            raise KeyboardInterrupt
        self.signum = signum
        logger.warning(
            "received %s: saving a checkpoint at the end of this step, then stopping "
            "(send it again to stop without saving)",
            signal.Signals(signum).name,
        )

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():  # Python allows handlers only there
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in STOP_SIGNALS}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def should_stop(self, accelerator) -> int:
        """The signal number if any process was signalled, else 0 (collective when distributed)."""
        if accelerator.num_processes == 1:
            return self.signum
        flag = torch.tensor([self.signum], device=accelerator.device)
        return int(accelerator.gather(flag).max().item())
