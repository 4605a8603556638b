"""hfcls-average's library: the mean of the checkpoints' weights, published, evaluating; another
architecture is refused."""

import pytest
import torch

from hfcls.artifacts.average import average_checkpoints
from hfcls.artifacts.weights import inspect_artifact, load_state_dict
from hfcls.errors import HfclsError


def test_the_average_is_the_mean_and_evaluates(two_epoch_run, tmp_path):
    from hfcls.evaluation.checkpoint import evaluate_checkpoint
    from hfcls.evaluation.request import EvalRequest
    from hfcls.recipe import load_recipe

    sources = [two_epoch_run / "checkpoints" / "epoch_1", two_epoch_run / "checkpoints" / "epoch_2"]
    out = average_checkpoints(sources, tmp_path / "avg")
    assert inspect_artifact(out).kind == "published"
    averaged, a, b = load_state_dict(out), *(load_state_dict(s) for s in sources)
    for key, value in averaged.items():
        if value.is_floating_point():
            assert torch.allclose(value, (a[key] + b[key]) / 2, atol=1e-6), key
        else:
            assert torch.equal(value, b[key]), key
    assert not torch.equal(a["classifier.1.weight"], b["classifier.1.weight"])
    recipe = load_recipe(two_epoch_run / "recipe.yaml")
    metrics = evaluate_checkpoint(EvalRequest(recipe, out, metrics=["accuracy"])).metrics
    assert 0 <= metrics["accuracy_top1"] <= 100


def test_different_architectures_are_refused(two_epoch_run, cifar_resnet_run, tmp_path):
    with pytest.raises(HfclsError, match="different architectures \\(resnet and cifar_resnet\\)"):
        average_checkpoints([two_epoch_run / "best", cifar_resnet_run / "best"], tmp_path / "avg")
    with pytest.raises(HfclsError, match="at least two"):
        average_checkpoints([two_epoch_run / "best"], tmp_path / "avg")
