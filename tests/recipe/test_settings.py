"""The settings validation finishes: train.ema, train.loss, train.log_with, model.lora, train.distill."""

import re

import pytest
from accelerate.utils import LoggerType

from hfcls.errors import HfclsError
from hfcls.recipe.load import load_recipe
from hfcls.recipe.settings import TRACKERS, distill_settings, ema_settings, lora_settings


def test_ema_settings_fill_in_the_defaults():
    assert ema_settings({"decay": 0.999}) == {
        "decay": 0.999,
        "every_n_steps": 1,
        "warmup": True,
        "warmup_power": pytest.approx(2 / 3),
    }
    assert ema_settings(None) is None


@pytest.mark.parametrize(
    "ema, word",
    [
        ({"decay": 1.5}, "decay"),
        ({"decay": "abc"}, "decay"),
        ({"every_n_steps": 0}, "every_n_steps"),
        ({"warmup": "yes"}, "warmup"),
        ({"warmup_power": 0}, "warmup_power"),
        ({"decai": 0.9}, "decai"),
        (0.99, "mapping"),
    ],
)
def test_bad_ema_settings_name_the_key(ema, word):
    with pytest.raises(HfclsError, match=word):
        ema_settings(ema)


@pytest.mark.parametrize(
    "loss, message",
    [
        ("{type: asl, gama_neg: 2}", 'unknown option gama_neg for asl (did you mean "gamma_neg"?)'),
        ("{type: focal, gamma: -1}", "train.loss.gamma must be a number >= 0"),
        ("{type: fcal}", "train.loss.type must be one of cross_entropy, focal, bce, asl"),
    ],
)
def test_a_wrong_loss_is_named_when_the_recipe_loads(based, loss, message):
    with pytest.raises(HfclsError, match=re.escape(message)):
        load_recipe(based, [f"train.loss={loss}"])


def test_a_loss_option_of_another_problem_type_waits_for_the_data(based):
    # alpha weighs the sigmoid focal loss (multi-label); whether the data is multi-label is known later.
    assert load_recipe(based, ["train.loss={type: focal, alpha: 0.25}"]).train.loss == {"type": "focal", "alpha": 0.25}


def test_the_trackers_named_are_accelerates():
    assert set(TRACKERS) == {str(t.value) for t in LoggerType if t != LoggerType.ALL}


def test_an_unknown_tracker_is_named_when_the_recipe_loads(based):
    with pytest.raises(HfclsError, match="unknown tracker 'tensorbord' \\(did you mean \"tensorboard\"\\?\\)"):
        load_recipe(based, ["train.log_with=[tensorbord]"])
    assert load_recipe(based).train.log_with == ["tensorboard"]  # unset: TensorBoard, when installed


def test_lora_and_distill_settings_fill_in_the_defaults():
    assert lora_settings({"r": 4}) == {"r": 4, "alpha": 16, "dropout": 0.0, "target_modules": None}
    assert lora_settings({"target_modules": ["query"]})["target_modules"] == ["query"]
    assert distill_settings({"teacher": "t/best"}) == {
        "teacher": "t/best",
        "alpha": 0.5,
        "temperature": 4.0,
        "hard": False,
    }
    assert lora_settings(None) is None and distill_settings(None) is None


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.lora={r: 0}", "model.lora.r must be a whole number at least 1, got 0"),
        ("model.lora={r: 2.5}", "model.lora.r must be a whole number at least 1, got 2.5"),
        ("model.lora={alpha: 0}", "model.lora.alpha must be a number above 0, got 0"),
        ("model.lora={dropout: 1}", "model.lora.dropout must be a number in [0, 1), got 1"),
        ("model.lora={rank: 4}", "model.lora: unknown key(s) rank; known: r, alpha"),
        ("model.lora={target_modules: query}", "model.lora.target_modules must be a list of module names"),
        ("model.lora={target_modules: []}", "model.lora.target_modules must be a list of module names"),
        ("model.lora=8", "model.lora must be dict, got 8"),
        ("train.distill={alpha: 0.5}", "train.distill.teacher must name the teacher model"),
        ("train.distill={teacher: t, alpha: 1.5}", "train.distill.alpha must be a number in [0, 1], got 1.5"),
        ("train.distill={teacher: t, temperature: 0}", "train.distill.temperature must be a number above 0"),
        ("train.distill={teacher: t, hard: 1}", "train.distill.hard must be true or false, got 1"),
        ("train.distill={teacher: t, hard: true, temperature: 2}", "hard: true distils the teacher's top class"),
        ("train.distill={teacher: t, temprature: 2}", 'unknown key(s) temprature (did you mean "temperature"?)'),
    ],
)
def test_bad_lora_and_distill_settings_name_the_key(based, override, message):
    with pytest.raises(HfclsError, match=re.escape(message)):
        load_recipe(based, [override])


def test_lora_refuses_frozen_prefixes_it_would_override(based):
    with pytest.raises(HfclsError, match=re.escape("model.lora freezes every weight but the adapters and the head")):
        load_recipe(based, ["model.lora={r: 4}", "optim.frozen=[resnet.]"])
