"""The one output rule, through every console script: each output flag of each command (read from setup.cfg's
console_scripts and from the parsers themselves) is used twice on the same place; the second run is refused
(exit status 2, one line naming the place) and the first run's output is left byte for byte.

A command, sub-command or output flag without a case in CASES fails test_every_output_has_a_case, and a flag
that looks written (its name says out, dir, json...) but is not typed hfcls.cli.types.Output fails
test_every_written_path_is_typed_as_an_output: a new command cannot escape the rule.
"""

import argparse
import importlib
import re
import shutil
from pathlib import Path

import pytest

from hfcls.cli.types import Output

from commands import console_scripts, ok, user_error

# The run it reads (two_epoch_run, shared with other modules) is trained once; the cases write in tmp_path.
pytestmark = pytest.mark.xdist_group("outputs")

ANALYZE_RESULTS = "results.pkl"

# (script, sub-command, dest) -> [arguments with {out} the place written, and the run's {recipe}, {run},
# {image}, {val}, {results}, {model} (a copy of best/)], one list per use of the flag (hfcls-demo's --out
# takes four forms).
CASES = {
    ("hfcls-train", None, "work_dir"): [
        ["{recipe}", "train.epochs=1", "train.publish=false", "train.log_with=[]", "--work-dir", "{out}"]
    ],
    ("hfcls-eval", None, "out"): [["{recipe}", "{run}/best", "--out", "{out}.json"]],
    ("hfcls-eval", None, "show_dir"): [["{recipe}", "{run}/best", "--metrics", "accuracy", "--show-dir", "{out}"]],
    ("hfcls-export", None, "out"): [["{run}/best", "{out}.onnx", "--limit", "2"]],
    ("hfcls-publish", None, "out"): [["{run}/best", "{out}"]],
    ("hfcls-average", None, "out"): [["{run}/checkpoints/epoch_1", "{run}/checkpoints/epoch_2", "{out}"]],
    ("hfcls-push", None, "out"): [["{run}/best", "me/tiny", "--dry-run", "--out", "{out}"]],
    ("hfcls-cam", None, "out"): [["{image}", "{run}/best", "--out", "{out}.png"]],
    ("hfcls-plot", None, "out"): [["{run}", "--out", "{out}.png"]],
    ("hfcls-lr", None, "out"): [["{recipe}", "--out", "{out}.png"]],
    ("hfcls-browse", None, "out"): [["{recipe}", "--n", "2", "--out", "{out}.png"]],
    ("hfcls-analyze", None, "out"): [["{results}", "--out", "{out}", "--n", "2"]],
    ("hfcls-demo", None, "out"): [
        ["{image}", "{run}/best", "--out", "{out}.csv"],
        ["{image}", "{run}/best", "--out", "{out}.json"],
        ["{image}", "{run}/best", "--out", "{out}.png"],
        ["{val}", "{run}/best", "--out", "{out}"],
    ],
    ("hfcls-retrieve", None, "out"): [["{image}", "{model}", "--gallery", "{val}", "--out", "{out}.csv"]],
    ("hfcls-bench", None, "json"): [
        ["{recipe}", "--steps", "1", "--warmup", "0", "--rounds", "1", "--json", "{out}.json"]
    ],
    ("hfcls-prepare", "digits", "dir"): [["digits", "{out}"]],
    ("hfcls-prepare", "imbalanced_digits", "dir"): [["imbalanced_digits", "{out}"]],
    ("hfcls-prepare", "multilabel_digits", "dir"): [["multilabel_digits", "{out}"]],
    ("hfcls-prepare", "shrink", "dst"): [
        ["shrink", "{recipe}", "{out}", "--splits", "val", "--short-side", "8", "--workers", "1"]
    ],
}

# Flags whose names look written but which name what a command reads.
READ_NOT_WRITTEN = {
    ("hfcls-push", None, "work_dir"),
    ("hfcls-plot", None, "work_dir"),
    ("hfcls-eval", None, "out_items"),
}
LOOKS_WRITTEN = re.compile(r"out|dst|dir|json|save|write|dest", re.IGNORECASE)


def parser_of(script: str) -> argparse.ArgumentParser:
    """The parser a command's parse_args builds, caught as it starts parsing."""

    class Caught(Exception):
        pass

    def catch(self, *args, **kwargs):
        raise Caught(self)

    module = importlib.import_module(console_scripts()[script])
    with pytest.MonkeyPatch.context() as patch:
        for name in ("parse_args", "parse_known_args", "parse_intermixed_args"):
            patch.setattr(argparse.ArgumentParser, name, catch)
        with pytest.raises(Caught) as caught:
            module.parse_args([])
    return caught.value.args[0]


def flags(parser, command=None) -> list:
    """(sub-command, action) of every argument of `parser` and of its sub-commands."""
    found = []
    for action in parser._actions:  # argparse lists a parser's arguments nowhere public
        if action.nargs == argparse.PARSER:
            for name, sub in action.choices.items():
                found += flags(sub, name)
        elif not isinstance(action, argparse._HelpAction):
            found.append((command, action))
    return found


def outputs() -> set:
    return {
        (script, command, action.dest)
        for script in console_scripts()
        for command, action in flags(parser_of(script))
        if isinstance(action.type, Output)
    }


def test_every_output_has_a_case():
    assert outputs() == set(CASES)


def test_every_written_path_is_typed_as_an_output():
    for script in console_scripts():
        for command, action in flags(parser_of(script)):
            names = " ".join([action.dest, str(action.metavar), *action.option_strings])
            key = (script, command, action.dest)
            if action.nargs != 0 and LOOKS_WRITTEN.search(names) and key not in READ_NOT_WRITTEN:
                assert isinstance(action.type, Output), f"{key}: a path the command writes? type it as an Output"


def snapshot(place: Path) -> dict:
    """Every file at `place` (a file, or a folder's tree) and its bytes."""
    if place.is_file():
        return {place.name: place.read_bytes()}
    return {str(p.relative_to(place)): p.read_bytes() for p in sorted(place.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def places(two_epoch_run, tmp_path_factory, command_once) -> dict:
    """The run the cases read, and a results file of it for hfcls-analyze."""
    root = tmp_path_factory.mktemp("outputs")
    paths = {
        "run": two_epoch_run,
        "recipe": two_epoch_run.parent / "tiny.yaml",
        "image": two_epoch_run.parent / "data" / "val" / "cat" / "0.png",
        "val": two_epoch_run.parent / "data" / "val",
        "results": root / ANALYZE_RESULTS,
        "model": shutil.copytree(two_epoch_run / "best", root / "best"),  # hfcls-retrieve indexes beside it
    }
    ok(command_once("hfcls-eval", paths["recipe"], two_epoch_run / "best", "--out", paths["results"]))
    return paths


@pytest.fixture(scope="module")
def command_once():
    """hfcls's command fixture for a module-scoped fixture (no capsys there): main() with the exit status."""
    from commands import run_in_process

    class Quiet:
        def readouterr(self):
            return "", ""

    return lambda script, *args: run_in_process(script, args, Quiet())


USES = [(key, index) for key, uses in CASES.items() for index in range(len(uses))]


@pytest.mark.parametrize(
    "key, index", USES, ids=[f"{k[0]} {k[1] or ''} {k[2]} {i}".replace("  ", " ") for k, i in USES]
)
def test_a_second_run_into_the_same_place_is_refused_and_the_first_output_kept(places, tmp_path, command, key, index):
    script, _, _ = key
    out = tmp_path / "out"
    args = [arg.format(out=out, **places) for arg in CASES[key][index]]
    ok(command(script, *args))
    written = sorted(tmp_path.iterdir())
    before = {path.name: snapshot(path) for path in written}
    assert before, f"{script} wrote nothing into {tmp_path}"
    line = user_error(command(script, *args))
    assert str(out) in line, line
    assert {path.name: snapshot(path) for path in sorted(tmp_path.iterdir())} == before
