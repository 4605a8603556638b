"""Recipes: inheritance, overrides, validation errors, the resolved file."""

import dataclasses
import json
import re
import time
import typing

import pytest
import yaml

from hfcls.errors import HfclsError
from hfcls.recipe import (EMA_DEFAULTS, NUMBER_LISTS, RANGES, Recipe, deep_merge, ema_settings, expanded_size,
                          in_interval, load_recipe, recipe_from_dict, save_recipe)

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


# ----------------------------------------------------------------------------- ranges


def numeric_keys(cls=Recipe, prefix=""):
    """Every int or float key of the recipe's sections, dotted."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if dataclasses.is_dataclass(hint):
            yield from numeric_keys(hint, f"{prefix}{field.name}.")
        elif {int, float} & set(typing.get_args(hint) or (hint,)):
            yield f"{prefix}{field.name}"


def test_every_number_of_a_recipe_has_a_range():
    missing = [key for key in [*numeric_keys(), *NUMBER_LISTS] if key not in RANGES]
    assert missing == []
    assert {f"train.ema.{key}" for key, value in EMA_DEFAULTS.items() if not isinstance(value, bool)} <= set(RANGES)
    assert "data.max_image_pixels" in RANGES and "seed" in RANGES


@pytest.mark.parametrize("interval, inside, outside", [
    ("[1, inf)", [1, 10**9], [0, -1]),
    ("(0, inf)", [1e-12, 5], [0, -1e-12]),
    ("[0, 1)", [0, 0.999], [1, -0.1]),
    ("(0, 1]", [1, 0.5], [0, 1.5]),
    ("[1, 65535]", [1, 65535], [0, 65536]),
])
def test_intervals_include_and_exclude_their_ends(interval, inside, outside):
    assert all(in_interval(value, interval) for value in inside)
    assert not any(in_interval(value, interval) for value in outside)


@pytest.mark.parametrize("override, message", [
    ("optim.lr=-1", "optim.lr must be at least 0, got -1.0"),
    ("optim.lr=.nan", "optim.lr must be a finite number, got nan"),
    ("optim.lr=.inf", "optim.lr must be a finite number, got inf"),
    ("optim.betas=[2,3]", "optim.betas must be in [0, 1), got [2, 3]"),
    ("optim.betas=[0.9]", "optim.betas must be a list of 2 numbers, got [0.9]"),
    ("optim.momentum=-5", "optim.momentum must be in [0, 1), got -5.0"),
    ("optim.weight_decay=-1", "optim.weight_decay must be at least 0, got -1.0"),
    ("optim.eps=0", "optim.eps must be above 0, got 0.0"),
    ("optim.lr_mult={backbone.: -1}", "optim.lr_mult must be at least 0, got {'backbone.': -1}"),
    ("optim.lr_mult={backbone.: .nan}", "optim.lr_mult.backbone. must be a number, got nan"),
    ("seed=-1", "seed must be in [0, 4294967295], got -1"),
    ("seed=4294967296", "seed must be in [0, 4294967295]"),
    ("train.label_smoothing=5", "train.label_smoothing must be in [0, 1), got 5.0"),
    ("train.clip_grad_norm=-1", "train.clip_grad_norm must be above 0, got -1.0"),
    ("train.mixup_alpha=-0.2", "train.mixup_alpha must be at least 0"),
    ("train.ema={decay: abc}", "train.ema.decay must be a number in (0, 1), got 'abc'"),
    ("train.ema={decay: 1.5}", "train.ema.decay must be a number in (0, 1), got 1.5"),
    ("train.ema={every_n_steps: 0}", "train.ema.every_n_steps must be a whole number at least 1, got 0"),
    ("train.auto_scale_lr={base_batch_size: 0}", "train.auto_scale_lr.base_batch_size must be at least 1"),
    ("data.eval_batch_size=-1", "data.eval_batch_size must be at least 1, got -1"),
    ("data.prefetch_factor=0", "data.prefetch_factor must be at least 1"),
    ("data.max_image_pixels=0", "data.max_image_pixels must be at least 1"),
    ("data.std=[0,0,0]", "data.std must be in (0, 1], got [0, 0, 0]"),
    ("data.mean=[-0.1,0.5,0.5]", "data.mean must be in [0, 1]"),
    ("data.train_val_split=.nan", "data.train_val_split must be a finite number"),
    ("data.train_pipeline.0.size=0", "data.train_pipeline[0].size (RandomCrop) must be a whole number (or a list "
                                     "of them) at least 1, got 0"),
    ("data.train_pipeline.0.size=[8,0]", "data.train_pipeline[0].size (RandomCrop)"),
    ("data.eval_pipeline.0.size=abc", "data.eval_pipeline[0].size (Resize)"),
    ("data.train_pipeline=[{type: RandomHorizontalFlip, p: 2}]", "data.train_pipeline[0].p (RandomHorizontalFlip) "
                                                                 "must be a number in [0, 1], got 2"),
    ("schedule.gamma=-1", "schedule.gamma must be above 0, got -1.0"),
    ("schedule.steps=[abc]", "schedule.steps must be a list of whole numbers, got ['abc']"),
    ("schedule.steps=[0]", "schedule.steps must be at least 1"),
    ("schedule.warmup_epochs=-3", "schedule.warmup_epochs must be at least 0, got -3.0"),
    ("schedule.warmup_steps=-1", "schedule.warmup_steps must be at least 0"),
    ("evaluation.topk=[0]", "evaluation.topk must be at least 1, got [0]"),
    ("dist.port=70000", "dist.port must be in [1, 65535], got 70000"),
    ("dist.timeout_minutes=0", "dist.timeout_minutes must be above 0"),
    ("checkpoint.max_keep=0", "checkpoint.max_keep must be at least 1"),
])
def test_a_number_out_of_its_range_is_refused_by_key(based, override, message):
    with pytest.raises(HfclsError) as error:
        load_recipe(based, [override])
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_nesterov_needs_momentum(based):
    with pytest.raises(HfclsError, match="optim.nesterov needs optim.momentum above 0"):
        load_recipe(based, ["optim.momentum=0", "optim.nesterov=true"])
    assert load_recipe(based, ["optim.nesterov=true"]).optim.nesterov


@pytest.mark.parametrize("override", ["optim.lr=0", "optim.momentum=0", "train.label_smoothing=0", "seed=4294967295",
                                      "dist.port=65535", "data.mean=[0,1,0.5]", "data.std=[1,1,1]",
                                      "train.ema={decay: 0.5, every_n_steps: 3}", "schedule.steps=[1, 90]",
                                      "data.train_pipeline.0.size=[8,8]", "optim.lr=1e-3"])
def test_values_at_the_ends_of_their_ranges_are_accepted(based, override):
    load_recipe(based, [override])


def test_ema_settings_fill_in_the_defaults():
    assert ema_settings({"decay": 0.999}) == {"decay": 0.999, "every_n_steps": 1, "warmup": True,
                                              "warmup_power": pytest.approx(2 / 3)}
    assert ema_settings(None) is None


@pytest.mark.parametrize("ema, word", [
    ({"decay": 1.5}, "decay"), ({"decay": "abc"}, "decay"), ({"every_n_steps": 0}, "every_n_steps"),
    ({"warmup": "yes"}, "warmup"), ({"warmup_power": 0}, "warmup_power"), ({"decai": 0.9}, "decai"),
    (0.99, "mapping"),
])
def test_bad_ema_settings_name_the_key(ema, word):
    with pytest.raises(HfclsError, match=word):
        ema_settings(ema)


# ----------------------------------------------------------------------------- YAML and custom_imports


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
    with pytest.raises(HfclsError, match=rf"bomb\.yaml: its YAML aliases \(\*name\) expand to {total:,} values, "
                                         r"more than the 100,000 a recipe may hold"):
        load_recipe(bomb)
    assert time.perf_counter() - started < 5  # counted, never written out


def test_yaml_aliases_within_the_limit_still_work(tmp_path):
    aliased = write(tmp_path / "a.yaml", """
data:
  batch_size: 8
  eval_pipeline: &eval [{type: Resize, size: 8}, {type: CenterCrop, size: 8}]
  train_pipeline: *eval
model: {config: {model_type: resnet}}
""")
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


@pytest.mark.parametrize("module, source, message", [
    ("raises_at_import", "x = 1\nraise RuntimeError('no GPU found')\n",
     r"importing raises_at_import raised RuntimeError: no GPU found \(.*raises_at_import\.py, line 2\); "
     "fix that module"),
    ("broken_syntax", "def f(:\n    pass\n",
     r"importing broken_syntax raised SyntaxError: .*broken_syntax\.py, line 1"),
    ("exits", "import sys\nsys.exit(3)\n", None),
])
def test_custom_imports_that_fail_are_one_line(tmp_path, monkeypatch, based, module, source, message):
    write(tmp_path / f"{module}.py", source)
    monkeypatch.syspath_prepend(str(tmp_path))
    if message is None:  # SystemExit is not an error of the module's code: it stops, as the module asked
        with pytest.raises(SystemExit):
            load_recipe(based, [f"custom_imports=[{module}]"])
        return
    with pytest.raises(HfclsError, match=message) as error:
        load_recipe(based, [f"custom_imports=[{module}]"])
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("names", ["[3]", "[null]", "['']"])
def test_custom_imports_must_be_module_names(based, names):
    with pytest.raises(HfclsError, match="custom_imports must list module names"):
        load_recipe(based, [f"custom_imports={names}"])
