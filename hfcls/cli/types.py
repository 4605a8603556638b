"""argparse `type=` converters for the commands' flags: a value out of range is refused while the
command line is parsed, before anything is loaded, as argparse refuses any bad value (exit status 2,
one `error:` line naming the flag: hfcls.cli.CommandParser)."""

from __future__ import annotations

import argparse


def int_between(low: int, high: int | None = None):
    """A converter to int that refuses a value below `low` or above `high` (None: no upper end)."""

    def convert(text: str) -> int:
        value = int(text)  # a ValueError argparse words as "invalid int value"
        if value < low or (high is not None and value > high):
            limits = f"at least {low}" if high is None else f"{low} to {high}"
            raise argparse.ArgumentTypeError(f"must be {limits}, got {value}")
        return value

    convert.__name__ = "int"  # the name argparse gives the type in its messages
    return convert


positive_int = int_between(1)
non_negative_int = int_between(0)


def comma_separated(text: str) -> list:
    """'a,b' -> ['a', 'b'], blanks dropped; a list with nothing in it is refused."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"must name at least one (comma-separated), got {text!r}")
    return items


class Output:
    """An argparse `type=` for a path the command writes: the text as given, marked with its kind, so
    that CommandParser.check_outputs applies the one output rule (hfcls.files.check_output) to it
    before any work, and no command's output escapes the rule.

    kind: "file", "folder", "stem" (OUT of OUT-<hash>.safetensors), or "run" (a training work dir:
    resumed, restarted or new, as hfcls.artifacts.run_dir decides; only a file there, or a place
    that cannot be written, is refused here)."""

    def __init__(self, kind: str):
        self.kind = kind
        self.__name__ = "path"  # the name argparse gives the type in its messages

    def __call__(self, text: str) -> str:
        if not text:
            raise argparse.ArgumentTypeError("must name a path, got an empty string")
        return text


output_file = Output("file")
output_folder = Output("folder")
output_stem = Output("stem")
output_run = Output("run")
