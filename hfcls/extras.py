"""The optional dependencies (setup.cfg's extras): a feature that needs one imports it here, and where it
is missing the user reads one line naming the feature, the package and the extra that installs it.

    plot         matplotlib    pictures: hfcls-demo --out x.png, hfcls-browse, hfcls-plot, hfcls-cam, ...
    tensorboard  tensorboard   the TensorBoard tracker (train.log_with; the default when installed)
    bench        psutil, timm  hfcls-bench's memory readings and peers; the start-up time in the training log
    export       onnx, ...     hfcls-export, and reading .onnx files
    explain      grad-cam      hfcls-cam, the demo app's Grad-CAM overlay
    app          gradio        hfcls-app
"""

from __future__ import annotations

import importlib
import importlib.util

from hfcls.errors import HfclsError


def install_hint(extra: str) -> str:
    return f'pip install "hfcls[{extra}]"'


def optional_import(module: str, extra: str, feature: str):
    """`import module`, or an HfclsError: '<feature> needs <package>, which is not installed; pip install ...'."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise HfclsError(f"{feature} needs {package}, which is not installed; {install_hint(extra)}") from None


def is_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package; a module blocked (sys.modules[name] = None)
        return False


def pyplot(feature: str):
    """matplotlib.pyplot on the Agg backend (files only: no display is needed, or wanted, to write a PNG)."""
    matplotlib = optional_import("matplotlib", "plot", feature)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
