"""Loading recipes: inheritance, overrides, the resolved file, YAML that would not fit in memory."""

import json
import re
import time

import pytest
import yaml

from hfcls.errors import HfclsError
from hfcls.recipe.load import deep_merge, expanded_size, load_recipe, save_recipe

from conftest import REPO, write


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
    recipe = load_recipe(
        based,
        [
            "optim.lr=1e-3",
            "model.config.depths=[2,2]",
            "data.val=null",
            "train.epochs=3",
            "data.train_pipeline.0.size=12",
            "optim.type=adamw",
        ],
    )
    assert recipe.optim.lr == pytest.approx(1e-3) and isinstance(recipe.optim.lr, float)
    assert recipe.model.config["depths"] == [2, 2]
    assert recipe.data.val is None
    assert recipe.train.epochs == 3
    assert recipe.data.train_pipeline[0] == {"type": "RandomCrop", "size": 12}
    assert recipe.optim.type == "adamw"


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


def nested_aliases(levels: int, width: int = 9) -> str:
    """The 'billion laughs': each level a list of `width` aliases of the level before."""
    lines = ['l0: &l0 ["x"]']
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines)


def written_out_size(value) -> int:
    """Values in `value` counted the slow way, every alias written out (the oracle)."""
    value = json.loads(json.dumps(value))  # shared lists and mappings become copies
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    return 1 if items is None else 1 + sum(written_out_size(item) for item in items)


def test_alias_expansion_is_counted_as_if_written_out():
    for levels, width in ((1, 3), (3, 2), (4, 4)):
        data = yaml.safe_load(nested_aliases(levels, width))
        assert expanded_size(data, "x") == written_out_size(data)


def test_yaml_aliases_that_expand_past_the_limit_are_refused_at_once(tmp_path, based):
    bomb = write(tmp_path / "bomb.yaml", f"{nested_aliases(9)}\nmodel: {{config: {{model_type: resnet, x: *l9}}}}\n")
    assert bomb.stat().st_size < 600
    sizes = [2]  # l0: a list of one string
    for _ in range(9):
        sizes.append(1 + 9 * sizes[-1])
    total = 1 + sum(sizes) + 3 + sizes[-1]  # the root, l0..l9, model/config/model_type, x
    started = time.perf_counter()
    with pytest.raises(
        HfclsError,
        match=rf"bomb\.yaml: its YAML aliases \(\*name\) expand to {total:,} values, "
        r"more than the 100,000 a recipe may hold",
    ):
        load_recipe(bomb)
    assert time.perf_counter() - started < 5  # counted, never written out


def test_yaml_aliases_within_the_limit_still_work(tmp_path):
    aliased = write(
        tmp_path / "a.yaml",
        """
data:
  batch_size: 8
  eval_pipeline: &eval [{type: Resize, size: 8}, {type: CenterCrop, size: 8}]
  train_pipeline: *eval
model: {config: {model_type: resnet}}
""",
    )
    recipe = load_recipe(aliased)
    assert recipe.data.train_pipeline == [{"type": "Resize", "size": 8}, {"type": "CenterCrop", "size": 8}]
    save_recipe(recipe, tmp_path / "saved.yaml")
    assert load_recipe(tmp_path / "saved.yaml").data.train_pipeline == recipe.data.train_pipeline


def test_a_recipe_that_contains_itself_and_overrides_with_aliases(tmp_path, based):
    loop = write(tmp_path / "loop.yaml", "model: &m {config: {model_type: resnet, again: *m}}\n")
    with pytest.raises(HfclsError, match="a YAML alias refers to the mapping or list that holds it"):
        load_recipe(loop)
    with pytest.raises(HfclsError, match=r'override "optim.lr_mult": its YAML aliases'):
        load_recipe(based, [f"optim.lr_mult={{{', '.join(nested_aliases(6).splitlines())}}}"])


@pytest.mark.parametrize("bases, shown", [("3", "got 3"), ("[3]", "got [3]"), ("{a: b}", "got {'a': 'b'}")])
def test_base_must_name_files(tmp_path, bases, shown):
    with pytest.raises(HfclsError, match=f"_base_ must be a file name or a list of them .*{re.escape(shown)}"):
        load_recipe(write(tmp_path / "r.yaml", f"_base_: {bases}\n"))
