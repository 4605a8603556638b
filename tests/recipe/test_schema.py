"""The schema's defaults, and the optimizer names it knows."""

import pytest

from hfcls.recipe.load import load_recipe
from hfcls.recipe.schema import OPTIMIZERS, TIMM_OPTIMIZERS, TORCH_OPTIMIZERS


def test_compile_backend_defaults_to_inductor(based):
    assert load_recipe(based).train.compile_backend == "inductor"
    assert load_recipe(based, ["train.compile_backend=eager"]).train.compile_backend == "eager"


def test_the_optimizers_named_are_torchs_and_timms():
    """hfcls checks optim.type without importing timm; the list is the installed timm's, less adahessian
    (a second-order step needs a backward pass with create_graph)."""
    timm_optim = pytest.importorskip("timm.optim")
    assert set(TIMM_OPTIMIZERS) == set(timm_optim.list_optimizers()) - set(TORCH_OPTIMIZERS) - {"adahessian"}
    assert OPTIMIZERS == TORCH_OPTIMIZERS + TIMM_OPTIMIZERS
