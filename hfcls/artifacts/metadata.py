"""The `hfcls` metadata a published .safetensors file or an .onnx graph carries (the model config, class
names and eval preprocessing that let the file be used on its own), parsed and checked before anything
uses it: a file altered or damaged is one line, not a KeyError deep inside a reader."""

from __future__ import annotations

import json

from hfcls.errors import HfclsError


def parse_metadata(raw: str, path) -> dict:
    """The `hfcls` metadata of a published file or an .onnx graph, checked before anything uses it:
    JSON holding the model config (a mapping with a model_type), the class names and the preprocessing."""
    try:
        metadata = json.loads(raw)
    except ValueError as error:
        raise HfclsError(
            f"{path}: its hfcls metadata is not JSON ({error}); the file is damaged or was "
            "altered: publish (or export) it again"
        ) from None
    config = metadata.get("config") if isinstance(metadata, dict) else None
    names = metadata.get("class_names", []) if isinstance(metadata, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        missing = "model config (a mapping naming its model_type)"
    elif not isinstance(metadata.get("preprocessor"), dict):
        missing = "preprocessing (a mapping)"
    elif not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
        missing = "class names (a list of strings)"
    else:
        return metadata
    raise HfclsError(
        f"{path}: its hfcls metadata has no {missing}; the file is damaged or was altered: "
        "publish (or export) it again with hfcls"
    )
