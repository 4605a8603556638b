"""A kill at an exact file-system operation: SIGKILL in a child process, or one simulated in this process.

Both watch through an audit hook (Python's own, `sys.addaudithook`), which sees each open, rename,
link and removal before it happens; no hfcls code is replaced. A stage is (audit event, regex over
its first two arguments); each stage waits for the one before, and the n-th match of the last is
the kill.

In this process the hook raises Killed there, and from then on at every operation that would change
the disk: the `finally` and clean-up code the exception unwinds through cannot tidy up, so the disk
is left as SIGKILL leaves it.
"""

import os
import re
import signal
import sys
from contextlib import contextmanager

# `python -c SIGKILL_AT STAGES_JSON N ARGS...`, tests/ on the path: hfcls-train ARGS, killed at that stage.
SIGKILL_AT = """
import json, sys
from kills import sigkill_at
sigkill_at(json.loads(sys.argv[1]), int(sys.argv[2]))
from hfcls.cli.train import main
main(sys.argv[3:])
"""

DISK_CHANGES = {
    "os.rename",
    "os.remove",
    "os.rmdir",
    "os.mkdir",
    "os.link",
    "os.symlink",
    "os.truncate",
    "os.chmod",
    "os.utime",
    "shutil.rmtree",
    "shutil.move",
}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class Killed(BaseException):
    """The simulated kill: not an Exception, so no `except Exception` stops it, as none stops a signal."""


class Watch:
    """Follows the stages through the audit events; `reached` is true at the kill, once."""

    def __init__(self, stages, nth: int):
        self.stages, self.nth, self.stage, self.seen = stages, nth, 0, 0

    def reached(self, event: str, args) -> bool:
        name, pattern = self.stages[self.stage]
        if event != name or not re.search(pattern, " ".join(map(str, args[:2]))):
            return False
        if self.stage < len(self.stages) - 1:
            self.stage += 1
            return False
        self.seen += 1
        return self.seen == self.nth


def sigkill_at(stages, nth: int) -> None:
    """SIGKILL this process at the kill (see the module's docstring)."""
    watch = Watch(stages, nth)
    sys.addaudithook(lambda event, args: watch.reached(event, args) and os.kill(os.getpid(), signal.SIGKILL))


def changes_disk(event: str, args) -> bool:
    if event == "open":  # open(path, mode, flags): mode for the built-in open, flags for os.open
        mode, flags = args[1], args[2]
        return any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & WRITE_FLAGS)
    return event in DISK_CHANGES


class _Kill:
    def __init__(self, stages, nth: int):
        self.watch, self.dead = Watch(stages, nth), False

    def __call__(self, event: str, args) -> None:
        if self.dead:
            if changes_disk(event, args):
                raise Killed(f"already killed: {event} {args[:2]}")
        elif self.watch.reached(event, args):
            self.dead = True
            raise Killed(f"{event} {args[:2]}")


_armed = []  # the kill a test has armed
_hook_added = False


def _hook(event: str, args) -> None:
    if _armed:
        _armed[-1](event, args)


@contextmanager
def killed_at(stages, nth: int = 1):
    """Raise Killed in the block at the kill (see the module's docstring)."""
    global _hook_added
    if not _hook_added:
        sys.addaudithook(_hook)  # an audit hook cannot be removed: it stays, idle, for the life of the process
        _hook_added = True
    _armed.append(_Kill(stages, nth))
    try:
        yield
    finally:
        _armed.pop()
