"""MMClassification downloads CIFAR and MNIST when their folder is missing; hfcls
loads the canonical copy from the Hugging Face Hub instead, with the same class names."""

from __future__ import annotations

import logging

import datasets
from datasets.exceptions import DatasetNotFoundError

from hfcls.data.columns import standardize
from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)


def hub_fallback(
    kind: str, missing: str, hub_name: str, split: str, label_column: str, classes: list | None, files_hint: str
) -> datasets.Dataset:
    """The Hub dataset `hub_name` standing in for the local files that are `missing`.

    Offline (or when the Hub cannot be reached) the error says where the files
    belong and how to go online instead, in one line.
    """
    logger.warning("%s: %s not found; loading %s (%s) from the Hugging Face Hub", kind, missing, hub_name, split)
    try:
        ds = datasets.load_dataset(hub_name, split=split)
    except (ConnectionError, DatasetNotFoundError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise HfclsError(
            f"{kind}: {missing} not found and {hub_name} cannot be loaded from the Hub ({reason}); "
            f"put {files_hint} there, or go online (unset HF_HUB_OFFLINE and HF_DATASETS_OFFLINE)"
        ) from None
    image_column = "img" if "img" in ds.column_names else "image"
    return standardize(ds, image_column, label_column, where=f"hub dataset {hub_name}", classes=classes)
