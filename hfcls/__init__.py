"""hfcls: image-classification training on datasets + transformers + accelerate."""

__version__ = "0.1.0"

from hfcls.errors import HfclsError  # noqa: E402

__all__ = ["HfclsError", "__version__"]
