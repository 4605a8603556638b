"""The hfcls metadata of a published file or an .onnx graph, checked before anything uses it."""

import pytest

from hfcls.artifacts.metadata import parse_metadata
from hfcls.errors import HfclsError


@pytest.mark.parametrize(
    "metadata, message",
    [
        ("[1, 2]", "has no model config"),
        ('{"config": {"model_type": "resnet"}, "class_names": ["a"]}', "has no preprocessing"),
        ('{"config": {"model_type": "resnet"}, "preprocessor": {}, "class_names": "ab"}', "has no class names"),
    ],
)
def test_metadata_is_checked_before_use(metadata, message):
    with pytest.raises(HfclsError, match=f"^x.onnx: its hfcls metadata {message}"):
        parse_metadata(metadata, "x.onnx")
