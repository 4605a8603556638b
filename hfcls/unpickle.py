"""Reading pickles that someone else wrote, without running them.

A pickle can name any importable callable, and loading it calls that callable:
that is how a crafted file runs a shell command. `load_plain` admits only
Python's plain data (dicts, lists, tuples, str, bytes, numbers, None, bool,
which need no lookup) and the callables a format is known to hold, passed by
name; anything else is refused before it is looked up, and the refusal names it.
"""

from __future__ import annotations

import io
import pickle

# What numpy arrays are pickled with (numpy 1.x and 2.x module names); they only build arrays.
NUMPY_ARRAYS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        # Python 3 writes bytes as _codecs.encode(str, "latin1") in protocols 0-2.
        ("_codecs", "encode"),
    }
)


class UnsafePickle(pickle.UnpicklingError):
    """The pickle asks for a callable outside what its format holds."""

    def __init__(self, module: str, name: str):
        self.qualified = f"{module}.{name}"
        super().__init__(f"it asks for {self.qualified}, which this kind of file never holds")


class _PlainUnpickler(pickle.Unpickler):
    def __init__(self, file, allowed, **kwargs):
        super().__init__(file, **kwargs)
        self.allowed = allowed

    def find_class(self, module, name):
        if (module, name) not in self.allowed:
            raise UnsafePickle(module, name)
        return super().find_class(module, name)


def load_plain(data: bytes, allowed=frozenset(), **kwargs):
    """Unpickle `data` admitting only plain data and the (module, name) pairs in `allowed`.

    kwargs go to pickle.Unpickler (encoding="bytes" for Python 2 pickles). Raises
    UnsafePickle naming the first callable outside `allowed`.
    """
    return _PlainUnpickler(io.BytesIO(data), allowed, **kwargs).load()
