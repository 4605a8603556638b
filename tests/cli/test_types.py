"""hfcls.cli.types and CommandParser: a bad flag value is refused while the command line is parsed,
exit status 2 and one `error:` line naming the flag; library errors about a parameter name its flag."""

import argparse

import pytest

from hfcls.cli import CommandParser
from hfcls.cli.bench import main as bench
from hfcls.cli.browse import main as browse
from hfcls.cli.lr import main as lr
from hfcls.cli.prepare import main as prepare
from hfcls.cli.types import comma_separated, int_between, non_negative_int, positive_int


def test_int_converters_take_their_range_and_refuse_the_rest():
    assert (positive_int("1"), non_negative_int("0"), int_between(1, 100)("100")) == (1, 0, 100)
    for convert, text, message in (
        (positive_int, "0", "must be at least 1, got 0"),
        (non_negative_int, "-1", "must be at least 0, got -1"),
        (int_between(1, 100), "101", "must be 1 to 100, got 101"),
    ):
        with pytest.raises(argparse.ArgumentTypeError, match=message):
            convert(text)
    with pytest.raises(ValueError):
        positive_int("1.5")


def test_comma_separated_drops_blanks_and_refuses_nothing():
    assert comma_separated("trainer, timm,") == ["trainer", "timm"]
    for text in ("", ",,,", " , "):
        with pytest.raises(argparse.ArgumentTypeError, match="must name at least one"):
            comma_separated(text)


def one_error_line(run, argv, capsys) -> str:
    """run(argv) refused: exit status 2, one line on stderr, which starts with `error:`."""
    with pytest.raises(SystemExit) as exit_info:
        run(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


def test_the_parser_words_every_error_as_one_line(capsys):
    parser = CommandParser(prog="hfcls-x")
    parser.add_argument("--n", type=positive_int)
    err = one_error_line(parser.parse_args, ["--n", "abc"], capsys)
    assert err == "error: argument --n: invalid int value: 'abc'; see hfcls-x --help\n"
    assert "unrecognized arguments: --m" in one_error_line(parser.parse_args, ["--m"], capsys)


@pytest.mark.parametrize("peers", ["", ",,,"])
def test_bench_refuses_peers_that_name_none(tiny_recipe, peers, capsys):
    err = one_error_line(bench, [str(tiny_recipe), "--peers", peers], capsys)
    assert "argument --peers: must name at least one" in err


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--steps", "0", "argument --steps: must be at least 1, got 0"),
        ("--warmup", "-1", "argument --warmup: must be at least 0, got -1"),
        ("--load", "-2", "argument --load: must be at least 0, got -2"),
    ],
)
def test_bench_flags_out_of_range(tiny_recipe, flag, value, words, capsys):
    assert words in one_error_line(bench, [str(tiny_recipe), flag, value], capsys)


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--short-side", "0", "argument --short-side: must be at least 1, got 0"),
        ("--quality", "101", "argument --quality: must be 1 to 100, got 101"),
        ("--rows-per-shard", "0", "argument --rows-per-shard: must be at least 1"),
        ("--workers", "0", "argument --workers: must be at least 1"),
    ],
)
def test_prepare_shrink_flags_out_of_range(tiny_recipe, tmp_path, flag, value, words, capsys):
    assert words in one_error_line(prepare, ["shrink", str(tiny_recipe), str(tmp_path / "x"), flag, value], capsys)
    assert not (tmp_path / "x").exists()


def test_a_library_error_about_a_parameter_names_the_flag(tiny_recipe, tmp_path, capsys):
    err = one_error_line(prepare, ["digits", str(tmp_path / "d"), "--val-fraction", "2"], capsys)
    assert err.startswith("error: --val-fraction must be between 0 and 1")
    err = one_error_line(browse, [str(tiny_recipe), "--columns", "-3"], capsys)
    assert err.startswith("error: --columns must be at least 1, got -3")
    err = one_error_line(lr, [str(tiny_recipe), "--num-processes", "0"], capsys)
    assert err.startswith("error: --num-processes must be at least 1, got 0")
