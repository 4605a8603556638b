"""The one error type for user mistakes."""

import difflib


class HfclsError(Exception):
    """A mistake the user can fix: a bad recipe, a missing file, a corrupt image.

    The message names the file, key or line concerned and says what to do. A library function
    names a bad argument in Python's terms and passes it as `param`; the message then starts
    with that name, which a command swaps for its own flag (`for_flags`).
    """

    def __init__(self, message: str, *, param: str | None = None):
        super().__init__(message)
        self.param = param

    def for_flags(self, flags: dict) -> str:
        """The message as a command shows it: a parameter the command has a flag for, named by its flag."""
        message = str(self)
        flag = flags.get(self.param)
        if flag is None or not message.startswith(self.param):
            return message
        return flag + message[len(self.param) :]


def did_you_mean(name, choices):
    """' (did you mean "x"?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""
