"""Pickles someone else wrote: plain data and numpy arrays load, anything that could run is refused by name."""

import pickle

import numpy as np
import pytest

from hfcls.unpickle import NUMPY_ARRAYS, UnsafePickle, load_plain

from crafted import RunsCommand


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_data_and_numpy_arrays_load_unchanged(protocol):
    content = {
        b"data": np.arange(12, dtype=np.uint8).reshape(3, 4),
        "labels": [1, 2, 3],
        "name": "batch 1",
        "score": 0.5,
        "none": None,
        "nested": ({"a": True},),
        "scalar": np.int64(7),
    }
    loaded = load_plain(pickle.dumps(content, protocol=protocol), NUMPY_ARRAYS)
    assert loaded.keys() == content.keys()
    np.testing.assert_array_equal(loaded[b"data"], content[b"data"])
    assert loaded[b"data"].dtype == np.uint8
    assert {k: v for k, v in loaded.items() if k != b"data"} == {k: v for k, v in content.items() if k != b"data"}


def test_a_crafted_pickle_is_refused_by_name_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    crafted = pickle.dumps({"data": [RunsCommand(marker)]})
    with pytest.raises(UnsafePickle, match=r"asks for (posix|os)\.system, which this kind of file never holds"):
        load_plain(crafted, NUMPY_ARRAYS)
    assert not marker.exists()
    pickle.loads(crafted)  # the oracle: unrestricted, the same bytes do run the command
    assert marker.exists()


def test_without_allowed_callables_even_numpy_is_refused():
    with pytest.raises(UnsafePickle, match="numpy"):
        load_plain(pickle.dumps(np.zeros(2)))
