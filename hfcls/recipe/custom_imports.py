"""A recipe's `custom_imports`: the Python modules it names, imported when it loads (e.g. one that
registers an architecture with the transformers Auto classes), a failure told in one line."""

from __future__ import annotations

import importlib
import os
import sys
import traceback

from hfcls.errors import HfclsError


def import_custom_modules(names: list, where: str) -> None:
    """Import each module by name, from the Python path or the current directory."""
    if names and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # last: a user's file never shadows an installed package
    for name in names:
        if not isinstance(name, str) or not name:
            raise HfclsError(f"{where}: custom_imports must list module names (strings), got {name!r}")
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise HfclsError(
                f"{where}: custom_imports: cannot import {name} ({error}); run from the folder "
                "that holds it or add that folder to PYTHONPATH"
            ) from None
        except Exception as error:  # the module's own code failed: say where, in one line
            raise HfclsError(
                f"{where}: custom_imports: importing {name} raised {type(error).__name__}: "
                f"{error}{_raised_at(error)}; fix that module"
            ) from None


def _raised_at(error: Exception) -> str:
    if isinstance(error, SyntaxError):  # its message already names the file and line
        return ""
    frame = traceback.extract_tb(error.__traceback__)[-1]
    return f" ({frame.filename}, line {frame.lineno})"
