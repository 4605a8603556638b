"""hfcls-eval's TTA and features on the digits model: TTA scores over views, features that cluster
by class (nearest neighbours), the same features from hfcls.pipeline and from transformers'
image-feature-extraction pipeline, and TTA on two processes equal to one."""

import numpy as np
import pytest
import torch

from hfcls.evaluation.checkpoint import evaluate_checkpoint
from hfcls.evaluation.request import EvalRequest
from hfcls.evaluation.results import read_results
from hfcls.recipe import load_recipe

pytestmark = pytest.mark.xdist_group("tta_features")  # one worker builds the module's fixture, once


@pytest.fixture(scope="module")
def feature_results(trained_digits, tmp_path_factory):
    recipe, work = trained_digits
    out = tmp_path_factory.mktemp("features") / "features.json"
    evaluate_checkpoint(EvalRequest(load_recipe(recipe), work / "best", out=out, out_items=("pred", "features")))
    return read_results(out)


def test_nearest_neighbours_by_features_share_their_class(feature_results):
    records = [r for r in feature_results["predictions"] if r.get("features") is not None]
    features = np.array([r["features"] for r in records])
    labels = np.array([r["gt_label"] for r in records])
    assert features.shape == (360, 16)  # the tiny ResNet's last stage width
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    accuracy = (labels[similarity.argmax(axis=1)] == labels).mean()
    assert accuracy > 0.6  # chance is 0.1 with 10 balanced classes


def test_pipeline_features_and_transformers_feature_extraction_agree(feature_results, trained_digits, val_files):
    from transformers import pipeline

    import hfcls

    recipe, work = trained_digits
    ours = hfcls.pipeline(work / "best", device="cpu").features(val_files[:4])
    stored = torch.tensor([r["features"] for r in feature_results["predictions"][:4]])
    assert torch.allclose(ours, stored, atol=1e-5)
    extractor = pipeline("image-feature-extraction", model=str(work / "best"), device="cpu")
    theirs = torch.tensor(np.array([np.ravel(extractor(f, pool=True)) for f in val_files[:4]]), dtype=torch.float32)
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_tta_scores_the_split_over_views(trained_digits, tmp_path):
    recipe, work = trained_digits
    common = dict(metrics=["accuracy"], metric_options={"topk": [1]}, out_items=("pred", "class_scores"))
    evaluate_checkpoint(EvalRequest(load_recipe(recipe), work / "best", out=tmp_path / "plain.json", **common))
    flipped = evaluate_checkpoint(
        EvalRequest(load_recipe(recipe), work / "best", out=tmp_path / "flip.json", tta="flip", **common)
    )
    a = torch.tensor([r["class_scores"] for r in read_results(tmp_path / "plain.json")["predictions"]])
    b = torch.tensor([r["class_scores"] for r in read_results(tmp_path / "flip.json")["predictions"]])
    assert torch.allclose(b.sum(dim=1), torch.ones(len(b)), atol=1e-5) and not torch.allclose(a, b, atol=1e-3)
    mirrored = 2 * b - a  # mean of two views: the mirror view's scores, recovered
    assert mirrored.min() > -1e-4 and torch.allclose(mirrored.sum(dim=1), torch.ones(len(b)), atol=1e-4)
    hits = (
        (b.argmax(dim=1) == torch.tensor([r["gt_label"] for r in read_results(tmp_path / "flip.json")["predictions"]]))
        .float()
        .mean()
        .item()
    )
    assert flipped.metrics["accuracy_top1"] == pytest.approx(100 * hits)
