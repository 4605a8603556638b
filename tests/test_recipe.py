"""Recipes: inheritance, overrides, validation errors, the resolved file."""

import pytest
import yaml

from hfcls.errors import HfclsError
from hfcls.recipe import deep_merge, load_recipe, recipe_from_dict, save_recipe

from conftest import REPO, tiny_recipe_dict, write


def test_bases_merge_in_order_recipe_last(based):
    recipe = load_recipe(based)
    assert recipe.data.batch_size == 32  # the recipe wins
    assert recipe.data.train == {"type": "imagefolder", "path": "a"}  # inherited
    assert recipe.data.val == {"type": "imagefolder", "path": "b"}
    assert recipe.optim.lr == 0.05 and recipe.optim.momentum == 0.8  # merged, not replaced
    assert recipe.model.config["depths"] == [1, 1]
    assert recipe.train.epochs == 10  # dataclass default


def test_delete_replaces_instead_of_merging():
    merged = deep_merge({"a": {"x": 1, "y": 2}}, {"a": {"_delete_": True, "z": 3}})
    assert merged == {"a": {"z": 3}}


def test_overrides_are_yaml_typed(based):
    recipe = load_recipe(based, ["optim.lr=1e-3", "model.config.depths=[2,2]", "data.val=null",
                                 "train.epochs=3", "data.train_pipeline.0.size=12", "optim.type=adamw"])
    assert recipe.optim.lr == pytest.approx(1e-3) and isinstance(recipe.optim.lr, float)
    assert recipe.model.config["depths"] == [2, 2]
    assert recipe.data.val is None
    assert recipe.train.epochs == 3
    assert recipe.data.train_pipeline[0] == {"type": "RandomCrop", "size": 12}
    assert recipe.optim.type == "adamw"


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=0.1", 'unknown key optim.lrr (did you mean "lr"?)'),
    ("trian.epochs=1", 'unknown key trian (did you mean "train"?)'),
    ("train.epochs=many", "train.epochs must be int, got 'many'"),
    ("train.mixed_precision=fp8", "train.mixed_precision must be one of no, fp16, bf16"),
    ("data.mean=[123.675,116.28,103.53]", "looks like the 0-255 scale"),
    ("model.pretrained=some/id", "not both"),
    ("data.batch_size=0", "data.batch_size must be at least 1"),
    ("optim", 'must look like key.sub=value'),
    ("optim.lr.x=1", "optim.lr is a value, not a section"),
])
def test_bad_recipes_name_the_key(based, override, message):
    with pytest.raises(HfclsError) as error:
        load_recipe(based, [override])
    assert message in str(error.value)


def test_mixed_precision_no_survives_yaml_boolean(based):
    assert load_recipe(based, ["train.mixed_precision=no"]).train.mixed_precision == "no"


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path / "bad.yaml", "data:\n  batch_size: 8\n  train: [unclosed\n")
    with pytest.raises(HfclsError, match=r"bad.yaml: line 4, column 1: invalid YAML"):
        load_recipe(path)


def test_missing_base_names_it(tmp_path):
    path = write(tmp_path / "r.yaml", "_base_: [nowhere.yaml]\n")
    with pytest.raises(HfclsError, match="_base_ file nowhere.yaml not found"):
        load_recipe(path)


def test_base_cycle_is_an_error(tmp_path):
    write(tmp_path / "a.yaml", "_base_: [b.yaml]\n")
    path = write(tmp_path / "b.yaml", "_base_: [a.yaml]\n")
    with pytest.raises(HfclsError, match="cycle"):
        load_recipe(path)


def test_saved_recipe_reloads_identically(based, tmp_path):
    recipe = load_recipe(based, ["train.epochs=3"])
    save_recipe(recipe, tmp_path / "resolved.yaml")
    again = load_recipe(tmp_path / "resolved.yaml")
    assert again == recipe
    assert "_base_" not in yaml.safe_load((tmp_path / "resolved.yaml").read_text())


def test_every_shipped_recipe_resolves():
    recipes = [p for p in (REPO / "recipes").rglob("*.yaml") if "_base_" not in p.parts]
    assert recipes
    for path in recipes:
        load_recipe(path)


def test_recipe_from_dict_requires_a_model():
    with pytest.raises(HfclsError, match="set model.pretrained"):
        recipe_from_dict({})


def test_push_needs_publish(tmp_path):
    recipe = tiny_recipe_dict(tmp_path, tmp_path, train={"epochs": 1, "publish": False, "push_to_hub": "me/model"})
    with pytest.raises(HfclsError, match="train.push_to_hub uploads the published model"):
        recipe_from_dict(recipe)


def test_compile_backend_defaults_to_inductor(based):
    assert load_recipe(based).train.compile_backend == "inductor"
    assert load_recipe(based, ["train.compile_backend=eager"]).train.compile_backend == "eager"
