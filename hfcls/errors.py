"""The one error type for user mistakes."""

import difflib


class HfclsError(Exception):
    """A mistake the user can fix: a bad recipe, a missing file, a corrupt image.

    The message names the file, key or line concerned and says what to do.
    """


def did_you_mean(name, choices):
    """' (did you mean "x"?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""
