"""Run records in the work dir: log.txt (human) and metrics.jsonl (one JSON object a line)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import datasets
import transformers

from hfcls.errors import HfclsError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(work_dir: Path | None, is_main: bool) -> None:
    """Main process: INFO to the console and log.txt. Others: warnings only."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_hfcls", False):
            root.removeHandler(handler)
    handlers = [logging.StreamHandler(sys.stdout)]
    if is_main and work_dir is not None:
        handlers.append(logging.FileHandler(Path(work_dir) / "log.txt"))
    for handler in handlers:
        handler._hfcls = True
        handler.setFormatter(logging.Formatter(FORMAT, "%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(logging.INFO if is_main else logging.WARNING)
    # Libraries stay quiet unless something is wrong.
    datasets.utils.logging.set_verbosity_warning()
    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_warning()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("accelerate").setLevel(logging.WARNING)


def append_jsonl(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def read_jsonl(path: Path) -> list:
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise HfclsError(f"{path} line {number} is not a JSON row ({error.msg}); remove or repair "
                                     "that line") from None
    return rows
