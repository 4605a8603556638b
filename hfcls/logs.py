"""Run records in the work dir: log.txt (human) and metrics.jsonl (one JSON object a line)."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import transformers

from hfcls.errors import HfclsError
from hfcls.files import append_line, open_own

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(work_dir: Path | None, is_main: bool) -> None:
    """Main process: INFO to the console and log.txt. Others: warnings only."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_hfcls", False):
            root.removeHandler(handler)
    handlers = [logging.StreamHandler(sys.stdout)]
    if is_main and work_dir is not None:
        handlers.append(RunLogFile(Path(work_dir) / "log.txt"))
    for handler in handlers:
        handler._hfcls = True
        handler.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(logging.INFO if is_main else logging.WARNING)
    # Libraries stay quiet unless something is wrong.
    quiet_datasets()
    transformers.utils.logging.set_verbosity_warning()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("accelerate").setLevel(logging.WARNING)


def quiet_datasets() -> None:
    """datasets at warnings, without progress bars. Importing it costs a second, and the commands that
    read no data set (demo, export, publish, cam, ...) never do: those get the settings it reads when
    it is imported (a user's own DATASETS_VERBOSITY wins)."""
    if "datasets" in sys.modules:
        datasets = sys.modules["datasets"]
        datasets.utils.logging.set_verbosity_warning()
        datasets.disable_progress_bars()
    else:
        os.environ.setdefault("DATASETS_VERBOSITY", "warning")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


class RunLogFile(logging.FileHandler):
    """log.txt. On a full disk it says so once, instead of a traceback under every later message."""

    failed = False

    def _open(self):
        # logging's opener (FileHandler has no public hook), without following a link planted at log.txt
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        return os.fdopen(open_own(self.baseFilename, flags), self.mode, encoding=self.encoding, errors=self.errors)

    def handleError(self, record):
        if not self.failed:
            self.failed = True
            print(
                f"warning: cannot write {self.baseFilename} ({sys.exc_info()[1]}); messages go to the console only",
                file=sys.stderr,
            )


def append_jsonl(path: Path, row: dict) -> None:
    append_line(path, json.dumps(row))


def read_jsonl(path: Path, torn_hint: str | None = None) -> list:
    """The rows of a file a killed process may have left mid-line: a torn last line is left out, and
    named in one warning (with `torn_hint`, what repairs it; None: the caller is repairing it)."""
    lines = Path(path).read_text().splitlines(keepends=True)
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines) and not line.endswith("\n"):  # the write of the last row was cut short
                if torn_hint is not None:
                    logging.getLogger(__name__).warning(
                        "%s line %d is torn (its write was cut short: a kill or a full disk) and is left out; %s",
                        path,
                        number,
                        torn_hint,
                    )
                break
            raise HfclsError(
                f"{path} line {number} is not a JSON row ({error.msg}); remove or repair that line"
            ) from None
    return rows
