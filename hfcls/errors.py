"""The one error type for user mistakes, and the command-line wrapper that reports it."""

import difflib
import functools
import sys


class HfclsError(Exception):
    """A mistake the user can fix: a bad recipe, a missing file, a corrupt image.

    The message names the file, key or line concerned and says what to do.
    """


def did_you_mean(name, choices):
    """' (did you mean "x"?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def cli_entry(main):
    """Wrap a command's main(): a user error prints one line and exits with status 2."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except HfclsError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    return wrapper
