"""Validation: unknown keys and wrong types named by key, the rules that tie keys together, and the
settings it finishes for the engine."""

import pytest

from hfcls.errors import HfclsError
from hfcls.recipe.load import load_recipe, recipe_from_dict, save_recipe
from hfcls.recipe.schema import EMA_DEFAULTS

from conftest import tiny_recipe_dict


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lrr=0.1", 'unknown key optim.lrr (did you mean "lr"?)'),
        ("trian.epochs=1", 'unknown key trian (did you mean "train"?)'),
        ("train.epochs=many", "train.epochs must be int, got 'many'"),
        ("train.mixed_precision=fp8", "train.mixed_precision must be one of no, fp16, bf16"),
        ("data.mean=[123.675,116.28,103.53]", "looks like the 0-255 scale"),
        ("model.pretrained=some/id", "not both"),
        ("data.batch_size=0", "data.batch_size must be at least 1"),
        ("optim", "must look like key.sub=value"),
        ("optim.lr.x=1", "optim.lr is a value, not a section"),
        # an eval pipeline that has no exported form is refused when the recipe loads
        (
            "data.eval_pipeline=[{type: CenterCrop, size: 8}]",
            "data.eval_pipeline: an eval pipeline must be [Resize] or [Resize, CenterCrop]",
        ),
        ("data.eval_pipeline=[{type: Resize, size: 8, interpolation: nearest}]", "must be bilinear or bicubic"),
        ("data.eval_pipeline.0.max_size=20", "supports size and interpolation only"),
        # fine-tuning keys
        ("optim.layer_decay=0", "optim.layer_decay must be in (0, 1], got 0.0"),
        ("optim.layer_decay=1.5", "optim.layer_decay must be in (0, 1], got 1.5"),
        ("optim.type=lino", "optim.type 'lino' is not an optimizer (did you mean \"lion\"?)"),
        ("optim.type=lookahead_adamv", "optim.type 'lookahead_adamv' is not an optimizer"),
        ("model.config_overrides={drop_path_rate: 0.1}", "with model.config, write those settings in model.config"),
        ("train.gradient_checkpointing=maybe", "train.gradient_checkpointing must be bool"),
    ],
)
def test_bad_recipes_name_the_key(based, override, message):
    with pytest.raises(HfclsError) as error:
        load_recipe(based, [override])
    assert message in str(error.value)


@pytest.mark.parametrize("key", ["num_labels", "id2label", "problem_type", "num_classes"])
def test_config_overrides_leave_the_classes_to_the_data(based, key):
    with pytest.raises(HfclsError, match=rf"model.config_overrides.{key}: the classes come from the data"):
        load_recipe(based, ["model.config=null", "model.pretrained=some/id", f"model.config_overrides.{key}=3"])


def test_a_timm_config_leaves_num_classes_to_the_data(based):
    timm = "{model_type: timm_wrapper, architecture: resnet18, model_args: {num_classes: 3}}"
    with pytest.raises(HfclsError, match=r"model.config.model_args.num_classes: the classes come from the data"):
        load_recipe(based, [f"model.config={timm}"])


def test_fine_tuning_keys_load(based):
    recipe = load_recipe(
        based,
        [
            "model.config=null",
            "model.pretrained=timm/vit_small_patch16_224.augreg_in21k",
            "model.config_overrides={drop_path_rate: 0.1}",
            "optim.type=lookahead_lamb",
            "optim.layer_decay=0.65",
            "optim.optimizer_kwargs={trust_clip: true}",
            "train.gradient_checkpointing=true",
        ],
    )
    assert recipe.model.config_overrides == {"drop_path_rate": 0.1} and recipe.optim.layer_decay == 0.65
    assert recipe.optim.frozen_eval and recipe.train.gradient_checkpointing


def test_mixed_precision_no_survives_yaml_boolean(based):
    assert load_recipe(based, ["train.mixed_precision=no"]).train.mixed_precision == "no"


def test_recipe_from_dict_requires_a_model():
    with pytest.raises(HfclsError, match="set model.pretrained"):
        recipe_from_dict({})


def test_push_needs_publish(tmp_path):
    recipe = tiny_recipe_dict(tmp_path, tmp_path, train={"epochs": 1, "publish": False, "push_to_hub": "me/model"})
    with pytest.raises(HfclsError, match="train.push_to_hub uploads the published model"):
        recipe_from_dict(recipe)


def test_nesterov_needs_momentum(based):
    with pytest.raises(HfclsError, match="optim.nesterov needs optim.momentum above 0"):
        load_recipe(based, ["optim.momentum=0", "optim.nesterov=true"])
    assert load_recipe(based, ["optim.nesterov=true"]).optim.nesterov


def test_validation_finishes_the_settings_the_engine_uses(based, tmp_path):
    recipe = load_recipe(based, ["train.ema={decay: 0.9}", "train.log_with=[]"])
    assert recipe.train.ema == {**EMA_DEFAULTS, "decay": 0.9}
    assert recipe.train.log_with == []
    assert load_recipe(based).train.ema is None
    save_recipe(recipe, tmp_path / "resolved.yaml")
    assert load_recipe(tmp_path / "resolved.yaml") == recipe  # finished settings reload as they are


def test_no_eval_pipeline_loads_for_the_tools_that_need_none(based):
    assert load_recipe(based, ["data.eval_pipeline=[]"]).data.eval_pipeline == []
