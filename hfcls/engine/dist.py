"""Several processes, one job: how a training run joins the processes that
`accelerate launch` starts, and the port checks of the launch/ scripts (hfcls.cli.dist).

Everything else (process groups, sampler sharding, gathering) is Accelerate's.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from contextlib import contextmanager

from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)

DEFAULT_PORT = 29500
# How gloo and NCCL word a peer that died ("reset", "closed") or went silent (the timeouts).
_LOST_SIGNS = ("gloo", "nccl", "timed out", "timeout caused", "connection reset", "connection closed", "broken pipe")


def cpu_only_processes() -> bool:
    """Several processes launched on a machine without a GPU (or other accelerator).

    Accelerate joins such processes in one gloo group (MULTI_CPU) only when told
    `cpu=True`; otherwise each one would train alone and all of them would write
    the same files.
    """
    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.accelerator.is_available()


@contextmanager
def lost_processes_explained(timeout_minutes: float):
    """Say in one line what a failed collective means before its traceback.

    A process that dies closes its connections and the others fail at once; one
    that hangs (or whose machine vanishes) makes them wait `dist.timeout_minutes`,
    the process-group timeout, and then fail: the job ends instead of hanging.
    """
    try:
        yield
    except RuntimeError as error:
        if _is_lost_process(error):
            rank = os.environ.get("RANK", "?")
            logger.error(
                "rank %s: another process of this job died or stopped answering (collectives wait at most "
                "dist.timeout_minutes=%g), so this one stops too; the first error in the other processes' "
                "output is the cause. Here: %s",
                rank,
                timeout_minutes,
                str(error).splitlines()[0],
            )
        raise


def _is_lost_process(error: RuntimeError) -> bool:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return False
    # gloo reports a dead or silent peer as a plain RuntimeError from its transport.
    message = str(error).lower()
    return isinstance(error, dist.DistError) or any(sign in message for sign in _LOST_SIGNS)


# What `accelerate launch --config_file` sets for a sharded run, and the kind of job it asks for.
SHARDED_LAUNCHES = {"ACCELERATE_USE_FSDP": "FSDP", "ACCELERATE_USE_DEEPSPEED": "DEEPSPEED"}


def check_launch(accelerator) -> None:
    """Refuse a launch config whose FSDP or DeepSpeed the Accelerator did not take up.

    Accelerate 1.15 makes an FSDP or DeepSpeed job only from GPUs (or other accelerators);
    on CPU processes it quietly runs plain data parallel instead, or one process alone.
    """
    for variable, kind in SHARDED_LAUNCHES.items():
        asked = os.environ.get(variable, "false").lower() == "true"
        if asked and accelerator.distributed_type.value != kind:
            raise HfclsError(
                f"the launch config asks for {kind} ({variable}=true), but Accelerate made a "
                f"{accelerator.distributed_type.value} job: it runs {kind} only on GPUs (or other "
                "accelerators); on CPU processes use launch/accelerate/cpu_processes.yaml"
            )


def is_sharded(accelerator) -> bool:
    """The model's weights are split over the processes: FSDP (DeepSpeed is not verified with hfcls)."""
    return accelerator.distributed_type.value == "FSDP"


def whole_state_dict(accelerator, model) -> dict | None:
    """Where the weights are sharded, the whole model's on the main process (a collective: every process
    calls it); None otherwise, where the unwrapped model itself holds them."""
    return accelerator.get_state_dict(model) if is_sharded(accelerator) else None


def launch_port(recipe_path: str) -> int:
    """$PORT when set (the launch scripts' convention), else the recipe's dist.port, else 29500."""
    if os.environ.get("PORT"):
        return parse_port(os.environ["PORT"], "PORT")
    from hfcls.recipe import load_recipe

    port = load_recipe(recipe_path).dist.port
    return DEFAULT_PORT if port is None else parse_port(port, f"{recipe_path}: dist.port")


def parse_port(value, where: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise HfclsError(f"{where}={value!r} is not a port number; use one from 1 to 65535, e.g. 29501")
    return port


def check_port_free(port: int) -> None:
    """Fail clearly now rather than let the rendezvous fail (several nodes) or
    silently move to another port (one node) once the processes start."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the rendezvous store binds: reusing a port in TIME_WAIT is fine, a listener is not.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise HfclsError(
                f"port {port} is already in use on {socket.gethostname()} (another job?); "
                f"pick a free one with PORT={port + 1} (or the recipe's dist.port)"
            ) from None
