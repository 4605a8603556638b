"""A crafted CIFAR batch or meta file runs nothing: not when a recipe trains on it, not in hfcls-verify."""

import pickle

import pytest

from hfcls.cli.verify import main as verify
from hfcls.data.sources import load_source
from hfcls.errors import HfclsError

from conftest import tiny_recipe_dict, write_recipe
from crafted import RunsCommand
from layouts import isolated_cache, write_cifar10, write_pickle  # noqa: F401


@pytest.fixture
def crafted(tmp_path, isolated_cache):  # noqa: F811
    """(CIFAR root, the crafted batch, the file a run of its payload would create)."""
    write_cifar10(tmp_path / "cifar")
    marker = tmp_path / "ran"
    batch = tmp_path / "cifar" / "cifar-10-batches-py" / "data_batch_3"
    original = pickle.loads(batch.read_bytes())
    write_pickle(batch, {**original, b"labels": RunsCommand(marker)})
    return tmp_path / "cifar", batch, marker


def test_training_data_from_a_crafted_batch_is_refused_by_name(crafted):
    root, batch, marker = crafted
    with pytest.raises(
        HfclsError,
        match=rf"^{batch} is not a plain CIFAR file: it asks for (posix|os)\.system, "
        "which this kind of file never holds; nothing of it was run",
    ):
        load_source({"type": "cifar10", "root": str(root), "split": "train"}, where="data.train")
    assert not marker.exists()
    pickle.loads(batch.read_bytes())  # the oracle: Python's own unpickler runs it
    assert marker.exists()


def test_hfcls_verify_on_a_crafted_meta_file_is_one_line(tmp_path, crafted, capsys):
    root, _, marker = crafted
    meta = root / "cifar-10-batches-py" / "batches.meta"
    write_pickle(meta, {b"label_names": RunsCommand(marker)})
    recipe = tiny_recipe_dict(None, None)
    recipe["data"] = {
        **recipe["data"],
        "train": {"type": "cifar10", "root": str(root), "split": "train"},
        "val": {"type": "cifar10", "root": str(root), "split": "test"},
    }
    with pytest.raises(SystemExit) as exit_info:
        verify([str(write_recipe(tmp_path / "r.yaml", recipe))])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {meta} is not a plain CIFAR file: it asks for ") and err.count("\n") == 1
    assert not marker.exists()
