"""hfcls-lr's schedule is the one training steps through: its length per epoch equals the run's, and
its values are transformers' cosine-with-warmup at the recipe's settings."""

import pytest
from transformers import get_cosine_schedule_with_warmup

from hfcls.analysis.lr import lr_schedule, steps_per_epoch
from hfcls.errors import HfclsError
from hfcls.logs import read_jsonl
from hfcls.recipe import load_recipe, recipe_from_dict

from conftest import tiny_recipe_dict


def test_steps_per_epoch_are_the_runs(two_epoch_run):
    recipe = load_recipe(two_epoch_run / "recipe.yaml")
    rows = [r for r in read_jsonl(two_epoch_run / "metrics.jsonl") if "epoch" in r]
    assert steps_per_epoch(recipe) == rows[0]["step"] == 3  # 24 images / batch 8, as the run counted


def test_cosine_with_warmup_matches_transformers(two_epoch_run):
    import torch

    raw = load_recipe(two_epoch_run / "recipe.yaml").to_dict()
    raw["schedule"] = {"type": "cosine", "warmup_epochs": 1}
    raw["train"]["epochs"] = 4
    recipe = recipe_from_dict(raw)
    rates = lr_schedule(recipe, per_epoch=5)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=raw["optim"]["lr"])
    oracle = get_cosine_schedule_with_warmup(optimizer, 5, 20)
    expected = []
    for _ in range(20):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        oracle.step()
    assert rates == pytest.approx(expected) and rates[5] == pytest.approx(raw["optim"]["lr"])


def test_no_processes_is_refused_by_its_parameter(tmp_path):
    recipe = recipe_from_dict(tiny_recipe_dict(tmp_path, tmp_path))
    for count in (lambda: steps_per_epoch(recipe, 0), lambda: lr_schedule(recipe, 0, per_epoch=5)):
        with pytest.raises(HfclsError, match="^num_processes must be at least 1, got 0") as error:
            count()
        assert error.value.param == "num_processes"
