"""hfcls: image-classification training on datasets + transformers + accelerate."""

from hfcls.errors import HfclsError
from hfcls.version import __version__

__all__ = ["HfclsError", "__version__", "pipeline"]


def __getattr__(name):
    # `hfcls.pipeline` imports torch and transformers only when first used.
    if name == "pipeline":
        from hfcls.inference import pipeline

        return pipeline
    raise AttributeError(f"module 'hfcls' has no attribute {name!r}")
