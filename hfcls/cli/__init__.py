"""The console scripts: one module each, which parses its flags, calls one library function and prints.

`cli_entry` gives every command the same contract: exit status 0 on success
(or the status `main` returns), 2 with one line on stderr for a user error (and
for a full, read-only or forbidden disk).
"""

import argparse
import functools
import gc
import sys
from contextlib import contextmanager

from hfcls.cli.types import Output, output_stem
from hfcls.errors import HfclsError
from hfcls.files import STORAGE_ERRNOS, check_output

# The --help of every command that reads a recipe says what custom_imports does.
RECIPE_RUNS_CODE = (
    "Security: a recipe's custom_imports key imports the Python modules it names, which runs "
    "their code with your permissions; use only recipes (and _base_ files) you trust."
)


def cli_entry(main=None, *, flags: dict | None = None):
    """Wrap a command's main(argv): a user error prints one line and exits with status 2.

    `flags` maps the library's parameter names onto the command's flags ({"device": "--device"}),
    so an error about an argument names what the user typed."""
    if main is None:
        return functools.partial(cli_entry, flags=flags)

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            status = main(argv)
        except HfclsError as error:
            print(f"error: {error.for_flags(flags or {})}", file=sys.stderr)
            sys.exit(2)
        except OSError as error:  # a full, read-only or forbidden disk that no writer named more precisely
            if error.errno not in STORAGE_ERRNOS:
                raise
            print(
                f"error: {error.filename or 'a file'}: {error.strerror}; free some space or fix the permissions, "
                "then run again",
                file=sys.stderr,
            )
            sys.exit(2)
        if status is not None and not isinstance(status, int):
            raise TypeError(
                f"{main.__module__}.main returned {type(status).__name__}; a command returns its exit status or None"
            )
        return status

    return wrapper


class CommandParser(argparse.ArgumentParser):
    """argparse's parser, its errors in the form of every other user error: one `error:` line, exit status 2."""

    def error(self, message):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")

    def add_overwrite(self, what: str = "the outputs") -> None:
        self.add_argument(
            "--overwrite",
            action="store_true",
            help=f"write over {what} (otherwise what exists is refused before any work)",
        )

    def output_actions(self, args) -> list:
        """The flags (and positionals) of this command, and of the sub-command `args` chose, whose
        type is a hfcls.cli.types.Output: every path the command writes."""
        found = []
        for action in self._actions:
            if action.nargs == argparse.PARSER:  # the sub-commands
                chosen = action.choices.get(getattr(args, action.dest, None))
                found += chosen.output_actions(args) if isinstance(chosen, CommandParser) else []
            elif isinstance(action.type, Output):
                found.append(action)
        return found

    def check_outputs(self, args, kinds: dict | None = None):
        """The one output rule (hfcls.files.check_output) on every path this command writes, before any
        work: what exists is refused unless --overwrite; a folder where a file is written, or the
        reverse, and a place that cannot be written are refused. `kinds`: {dest: kind} where the
        kind depends on other arguments. Returns `args`."""
        for action in self.output_actions(args):
            path = getattr(args, action.dest, None)
            if path is None:
                continue
            kind = (kinds or {}).get(action.dest, action.type.kind)
            what = action.option_strings[-1] if action.option_strings else (action.metavar or action.dest.upper())
            overwrite = kind == "run" or getattr(args, "overwrite", False)
            check_output(path, overwrite, kind="folder" if kind == "run" else kind, what=what)
        return args


@contextmanager
def heavy_imports():
    """The block's imports (torch, transformers, datasets: what a command needs once its command
    line is good) with the garbage collector off, and every object they made frozen.

    Those imports make millions of objects and no garbage, yet each full collection on the
    way walks all of them, as does every later one and the interpreter's exit: importing
    hfcls.api took 6.5 s with the collector on, 4.0 s with it off and the result frozen
    (benchmarks/README.md). Frozen objects stay out of every collection; the training that
    follows runs with the collector on as usual."""
    outermost = gc.isenabled()  # a nested block (or a caller that turned it off) leaves it off
    gc.disable()
    try:
        yield
    finally:
        if outermost:
            # Once a process: a process that calls main() again (a test, a notebook) would also
            # freeze, for good, any garbage its earlier calls left for the collector.
            if gc.get_freeze_count() == 0:
                gc.freeze()
            gc.enable()


def add_ema_flags(parser) -> None:
    """--ema / --no-ema into `use_ema` (None: what the run evaluated, the EMA when there is one)."""
    ema = parser.add_mutually_exclusive_group()
    ema.add_argument(
        "--ema",
        dest="use_ema",
        action="store_const",
        const=True,
        help="a training checkpoint's EMA weights (the default when it holds them)",
    )
    ema.add_argument(
        "--no-ema",
        dest="use_ema",
        action="store_const",
        const=False,
        help="a training checkpoint's raw weights, even when it holds EMA weights",
    )


def add_release_flags(parser, example: str) -> None:
    """What the commands that write a release named by its hash take: OUT, --date, --recipe,
    --overwrite and the EMA choice."""
    parser.add_argument("out", metavar="OUT", type=output_stem, help=f"output path without the hash, e.g. {example}")
    parser.add_argument("--date", action="store_true", help="name it OUT_<YYYYMMDD>-<hash> (MMClassification's form)")
    parser.add_argument("--recipe", help="the training recipe, for a bare .safetensors file")
    parser.add_overwrite("an OUT-<hash> file and folder")
    add_ema_flags(parser)


def console_and_recipe(recipe_path: str | None):
    """What the artifact commands begin with: logging to the console (library progress bars
    off), and the --recipe given, loaded (None without one)."""
    with heavy_imports():
        from hfcls.logs import setup_logging
        from hfcls.recipe import load_recipe

    setup_logging(None, is_main=True)
    return load_recipe(recipe_path) if recipe_path else None
