"""hfcls: image-classification training on datasets + transformers + accelerate."""

__version__ = "0.1.0"

from hfcls.errors import HfclsError  # noqa: E402

__all__ = ["HfclsError", "__version__", "pipeline"]


def __getattr__(name):
    # `hfcls.pipeline` imports torch and transformers only when first used.
    if name == "pipeline":
        from hfcls.infer import pipeline

        return pipeline
    raise AttributeError(f"module 'hfcls' has no attribute {name!r}")
