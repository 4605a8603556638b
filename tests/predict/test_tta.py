"""Test-time augmentation: the scores are the mean softmax over the views, computed view by view."""

import pytest
import torch

from hfcls.errors import HfclsError
from hfcls.labels import MULTI_LABEL, SINGLE_LABEL
from hfcls.predict.forward import forward_batch
from hfcls.predict.inputs import ModelInputs
from hfcls.predict.tta import parse_tta, views

PLAIN = ModelInputs([0.0] * 3, [1 / 255] * 3)  # uint8 in, the same numbers out as float


class Recorder(torch.nn.Module):
    """A linear classifier that records every batch it is called on."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(3 * 8 * 8, 4)
        self.config = type("Config", (), {"model_type": "recorder"})()
        self.seen = []

    def forward(self, pixel_values):
        self.seen.append(pixel_values.clone())
        return type("Out", (), {"logits": self.linear(pixel_values.flatten(1))})()


@pytest.mark.parametrize("spec, count", [("flip", 2), ("crops", 6), ("flip,crops", 12)])
def test_scores_are_the_mean_softmax_over_the_views(spec, count):
    model = Recorder()
    x = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    out = forward_batch(model, x, PLAIN, SINGLE_LABEL, tta=parse_tta(spec))
    assert len(model.seen) == count and all(v.shape == x.shape for v in model.seen)
    assert torch.equal(model.seen[0], x.float())
    if "flip" in spec:
        assert torch.equal(model.seen[count // 2], x.float().flip(-1))
    expected = torch.stack([model.linear(v.flatten(1)).softmax(dim=1) for v in model.seen]).mean(dim=0)
    assert torch.equal(out.scores, expected)  # the views' mean itself, not a softmax of its logarithm
    assert out.logits is None  # the views have no single logit


def test_a_multi_label_model_averages_its_sigmoids():
    model = Recorder()
    x = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    scores = forward_batch(model, x, PLAIN, MULTI_LABEL, tta=("flip",)).scores
    expected = torch.stack([model.linear(v.flatten(1)).sigmoid() for v in model.seen]).mean(dim=0)
    assert torch.equal(scores, expected)


def test_a_corner_crop_is_the_corner_resized():
    x = torch.arange(64.0).view(1, 1, 8, 8)
    top_left = views(x, ("crops",))[1]
    expected = torch.nn.functional.interpolate(x[..., :7, :7], size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.equal(top_left, expected)


def test_no_views_is_the_model_itself_and_unknown_views_are_named():
    model = Recorder()
    x = torch.randint(0, 256, (5, 3, 8, 8), dtype=torch.uint8)
    out = forward_batch(model, x, PLAIN, SINGLE_LABEL, tta=parse_tta(None))
    assert len(model.seen) == 1 and torch.equal(out.logits, model.linear(x.float().flatten(1)))
    assert torch.equal(out.scores, out.logits.softmax(dim=1))
    assert parse_tta("crops,flip") == ("flip", "crops")
    with pytest.raises(HfclsError, match="unknown view 'flips'.*did you mean \"flip\"") as error:
        parse_tta("flips")
    assert error.value.param == "tta" and str(error.value).startswith("tta: ")
