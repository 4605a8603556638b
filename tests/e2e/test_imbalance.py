"""Imbalanced digits (2 % of class 0's training images): class-balanced sampling and balanced class
weights each raise class 0's recall and the macro recall over plain training, as hfcls-eval reports them."""

import pytest

from hfcls.api import train
from hfcls.evaluation.checkpoint import evaluate_checkpoint
from hfcls.evaluation.request import EvalRequest
from hfcls.recipe import load_recipe

from conftest import REPO, shared_once

pytestmark = pytest.mark.xdist_group("imbalance")  # one worker builds the module's fixture, once

RECIPES = REPO / "recipes" / "imbalanced_digits"
VARIANTS = {"plain": "", "sampler": "_class-balanced", "weights": "_class-weights"}


@pytest.fixture(scope="module")
def recalls(tmp_path_factory):
    """{variant: (class 0's recall, macro recall)} after 5 epochs of each recipe, on the balanced val split."""
    from hfcls.data.prepare import prepare_imbalanced_digits

    data = shared_once(tmp_path_factory, "imbalanced_digits", prepare_imbalanced_digits)
    found = {}
    for variant, suffix in VARIANTS.items():
        recipe = load_recipe(
            RECIPES / f"resnet-tiny_1xb64_imbalanced-digits{suffix}.yaml",
            [
                f"data.train.path={data / 'train'}",
                f"data.val.path={data / 'val'}",
                "train.epochs=5",
                "evaluation.interval=5",
                "train.log_with=[]",
                "train.publish=false",
            ],
        )
        work = tmp_path_factory.mktemp(variant)
        train(recipe, work)
        metrics = evaluate_checkpoint(EvalRequest(recipe, work / "latest", metrics=["recall"])).metrics
        found[variant] = (metrics["recall_classwise"][0], metrics["recall"])
    return found


def test_the_rare_class_is_missed_without_balancing(recalls):
    class0, macro = recalls["plain"]
    assert class0 < 50 and macro < 95  # 3 of 1,298 training images: the model rarely says 0


@pytest.mark.parametrize("variant", ["sampler", "weights"])
def test_balancing_raises_the_rare_class_and_the_macro_recall(recalls, variant):
    class0, macro = recalls[variant]
    plain_class0, plain_macro = recalls["plain"]
    assert class0 > plain_class0 + 30 and macro > plain_macro + 3
