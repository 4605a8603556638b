"""The settings validation finishes: train.ema, train.loss, train.log_with."""

import re

import pytest
from accelerate.utils import LoggerType

from hfcls.errors import HfclsError
from hfcls.recipe.load import load_recipe
from hfcls.recipe.settings import TRACKERS, ema_settings


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
