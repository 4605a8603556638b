"""The schema's defaults."""

from hfcls.recipe.load import load_recipe


def test_compile_backend_defaults_to_inductor(based):
    assert load_recipe(based).train.compile_backend == "inductor"
    assert load_recipe(based, ["train.compile_backend=eager"]).train.compile_backend == "eager"
