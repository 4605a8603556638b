"""A dataset already in Arrow or Parquet form: `Dataset.save_to_disk` output or parquet files."""

from __future__ import annotations

from pathlib import Path

import datasets

from hfcls.data.columns import standardize
from hfcls.data.formats.common import read_classes
from hfcls.errors import HfclsError, did_you_mean


def disk(
    path: str,
    split: str | None = None,
    image_column: str = "image",
    label_column: str = "label",
    classes: list | str | None = None,
    streaming: bool = False,
):
    """`path` written by `save_to_disk` (a Dataset or a DatasetDict), or a folder of parquet
    files or webdataset .tar shards (splits named by files or folders as on the Hub:
    `train-*.parquet`, `train/`); `split` picks one split when there are several.
    `streaming: true` reads the files while training instead of converting them first."""
    folder = Path(path)
    if not folder.exists():
        raise HfclsError(f"disk dataset {path} does not exist; check data.*.path")
    if (folder / "state.json").is_file() or (folder / "dataset_dict.json").is_file():
        try:
            loaded = datasets.load_from_disk(str(folder))
        except (OSError, ValueError, KeyError) as error:  # a damaged state.json, dataset_info.json or Arrow file
            raise HfclsError(
                f"disk dataset {path} cannot be read ({' '.join(str(error).split())}); save it again with save_to_disk"
            ) from None
        if streaming:
            loaded = _as_stream(loaded)
    elif folder.is_dir() and (builder := _file_builder(folder)):
        loaded = datasets.load_dataset(builder, data_dir=str(folder), streaming=streaming)
    else:
        raise HfclsError(
            f"{path} holds neither a save_to_disk dataset (state.json or dataset_dict.json) "
            "nor .parquet or webdataset .tar files"
        )
    ds = _pick_split(loaded, split, path)
    return standardize(
        ds,
        image_column,
        label_column,
        where=f"disk dataset {path}",
        classes=read_classes(classes, f"disk dataset {path}"),
    )


def _file_builder(folder: Path) -> str | None:
    for builder, pattern in (("parquet", "*.parquet"), ("webdataset", "*.tar")):
        if any(folder.rglob(pattern)):
            return builder
    return None


def _as_stream(loaded):
    """A saved dataset read as a stream: one shard per Arrow file, so processes can split them."""
    if isinstance(loaded, datasets.DatasetDict):
        return datasets.IterableDatasetDict({name: _as_stream(ds) for name, ds in loaded.items()})
    return loaded.to_iterable_dataset(num_shards=max(1, len(loaded.cache_files)))


def _pick_split(loaded, split: str | None, path: str):
    if isinstance(loaded, (datasets.Dataset, datasets.IterableDataset)):
        if split is not None:
            raise HfclsError(f"disk dataset {path} is a single split; remove split: {split}")
        return loaded
    if split is None:
        if len(loaded) == 1:
            return next(iter(loaded.values()))
        raise HfclsError(f"disk dataset {path} holds splits {', '.join(loaded)}; choose one with split:")
    if split not in loaded:
        raise HfclsError(
            f"disk dataset {path} has no split {split!r}{did_you_mean(split, loaded)}; its splits: {', '.join(loaded)}"
        )
    return loaded[split]
