"""The training losses against independent oracles: transformers' own losses, torchvision's
focal loss, the formulas of the papers, scikit-learn's balanced class weights."""

import inspect
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight
from torchvision.ops import sigmoid_focal_loss
from transformers import AutoConfig, AutoModelForImageClassification

from hfcls.engine.losses import LOSSES, TrainingLoss, class_weights, loss_function
from hfcls.errors import HfclsError
from hfcls.labels import MULTI_LABEL, SINGLE_LABEL
from hfcls.recipe.schema import LOSS_TYPES


def loss(kind, problem_type, smoothing=0.0, weights=None, **options):
    per_image, options = loss_function({"type": kind, **options}, problem_type)
    return TrainingLoss(per_image, options, smoothing, None if weights is None else torch.tensor(weights))


@pytest.fixture(scope="module")
def batch():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(12, 5, generator=generator) * 2
    multi_hot = (torch.rand(12, 5, generator=generator) < 0.4).float()
    ids = torch.randint(0, 5, (12,), generator=generator)
    return logits, multi_hot, ids, torch.ones(12, dtype=torch.bool)


@pytest.mark.parametrize("problem_type", [SINGLE_LABEL, MULTI_LABEL])
def test_default_losses_equal_transformers_own(problem_type, batch):
    """A tiny ResNet computes its own loss from the labels, as transformers defines it for the problem type."""
    config = AutoConfig.for_model(
        "resnet", embedding_size=8, hidden_sizes=[8], depths=[1], num_labels=5, problem_type=problem_type
    )
    torch.manual_seed(0)
    model = AutoModelForImageClassification.from_config(config).eval()
    pixels = torch.randn(12, 3, 16, 16)
    _, multi_hot, ids, valid = batch
    labels = multi_hot if problem_type == MULTI_LABEL else ids
    with torch.no_grad():
        out = model(pixel_values=pixels, labels=labels)
    per_image, options = loss_function(None, problem_type)
    ours = TrainingLoss(per_image, options, 0.0, None)(out.logits, labels, valid)
    assert ours.item() == pytest.approx(out.loss.item(), rel=1e-6)


def test_cross_entropy_smoothing_and_valid_mask(batch):
    logits, _, ids, _ = batch
    valid = torch.arange(12) < 9
    log_p = logits.log_softmax(dim=1)
    eps = 0.3
    expected = ((1 - eps) * -log_p[torch.arange(12), ids] + eps * -log_p.mean(dim=1))[:9].mean()
    assert loss("cross_entropy", SINGLE_LABEL, eps)(logits, ids, valid).item() == pytest.approx(
        expected.item(), rel=1e-6
    )


def test_multi_hot_smoothing_moves_each_target_half_way(batch):
    logits, multi_hot, _, valid = batch
    eps = 0.2
    expected = F.binary_cross_entropy_with_logits(logits, multi_hot * (1 - eps) + eps / 2)
    assert loss("bce", MULTI_LABEL, eps)(logits, multi_hot, valid).item() == pytest.approx(expected.item(), rel=1e-6)


def test_ignored_classes_leave_the_mean(batch):
    logits, multi_hot, _, valid = batch
    targets = multi_hot.clone()
    targets[0, :2] = -1
    terms = F.binary_cross_entropy_with_logits(logits, multi_hot, reduction="none")
    per_image = torch.cat([terms[:1, 2:].mean(1), terms[1:].mean(1)])
    assert loss("bce", MULTI_LABEL)(logits, targets, valid).item() == pytest.approx(per_image.mean().item(), rel=1e-6)


def test_asl_follows_the_paper(batch):
    """L = -[y (1-p)^g+ log p + (1-y) p_m^g- log(1-p_m)], p_m = max(p - m, 0) (Ben-Baruch et al., eq. 3-4)."""
    logits, multi_hot, _, valid = batch
    p = torch.sigmoid(logits.double()).numpy()
    y = multi_hot.double().numpy()
    g_pos, g_neg, m = 1.0, 4.0, 0.05
    p_m = np.maximum(p - m, 0)
    terms = -(y * (1 - p) ** g_pos * np.log(p) + (1 - y) * p_m**g_neg * np.log(1 - p_m))
    got = loss("asl", MULTI_LABEL, gamma_pos=g_pos, gamma_neg=g_neg, clip=m)(logits, multi_hot, valid)
    assert got.item() == pytest.approx(terms.mean(), rel=1e-5)
    # Without focusing or shift it is the binary cross-entropy.
    plain = loss("asl", MULTI_LABEL, gamma_pos=0, gamma_neg=0, clip=0)(logits, multi_hot, valid)
    assert plain.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, multi_hot).item(), rel=1e-5)


@pytest.mark.parametrize("alpha", [None, 0.25])
def test_sigmoid_focal_equals_torchvision(batch, alpha):
    logits, multi_hot, _, valid = batch
    expected = sigmoid_focal_loss(logits, multi_hot, alpha=-1 if alpha is None else alpha, gamma=2.0, reduction="mean")
    options = {} if alpha is None else {"alpha": alpha}
    got = loss("focal", MULTI_LABEL, **options)(logits, multi_hot, valid)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_softmax_focal_down_weights_easy_images(batch):
    logits, _, ids, valid = batch
    p_true = logits.softmax(dim=1)[torch.arange(12), ids]
    expected = (-((1 - p_true) ** 2) * p_true.log()).mean()
    assert loss("focal", SINGLE_LABEL)(logits, ids, valid).item() == pytest.approx(expected.item(), rel=1e-6)
    ce = F.cross_entropy(logits, ids)
    assert loss("focal", SINGLE_LABEL, gamma=0)(logits, ids, valid).item() == pytest.approx(ce.item(), rel=1e-6)


def test_balanced_class_weights_equal_scikit_learn():
    labels = np.array([0] * 3 + [1] * 40 + [2] * 57)
    counts = np.bincount(labels)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose(class_weights("balanced", counts, ["a", "b", "c"]).numpy(), expected, rtol=1e-6)


def test_class_weights_scale_each_class(batch):
    logits, multi_hot, ids, valid = batch
    weights = [3.0, 1.0, 1.0, 0.5, 2.0]
    expected = F.cross_entropy(logits, ids, weight=torch.tensor(weights), reduction="none").mean()
    got = loss("cross_entropy", SINGLE_LABEL, weights=weights)(logits, ids, valid)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    terms = F.binary_cross_entropy_with_logits(logits, multi_hot, reduction="none") * torch.tensor(weights)
    got = loss("bce", MULTI_LABEL, weights=weights)(logits, multi_hot, valid)
    assert got.item() == pytest.approx(terms.mean().item(), rel=1e-6)
    # A mixed (soft) batch weighs each class's share of the target.
    soft = F.one_hot(ids, 5).float() * 0.7 + F.one_hot(ids.roll(1), 5).float() * 0.3
    expected = -(soft * torch.tensor(weights) * logits.log_softmax(1)).sum(1).mean()
    got = loss("cross_entropy", SINGLE_LABEL, weights=weights)(logits, soft, valid)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize(
    "spec, problem_type, message",
    [
        ({"type": "bce"}, SINGLE_LABEL, "bce does not train a single-label model; use cross_entropy or focal"),
        (
            {"type": "cross_entropy"},
            MULTI_LABEL,
            "does not train a multi-label (lists of classes) model; use focal or bce",
        ),
        ({"type": "focal", "alpha": 0.25}, SINGLE_LABEL, "focal on single-label data takes gamma, not alpha"),
    ],
)
def test_a_loss_that_does_not_fit_the_data_is_named(spec, problem_type, message):
    with pytest.raises(HfclsError, match=re.escape(message)):
        loss_function(spec, problem_type)


def test_class_weights_must_fit_the_classes():
    with pytest.raises(HfclsError, match="lists 2 weights for the data's 3 classes"):
        class_weights([1, 2], None, ["a", "b", "c"])
    with pytest.raises(HfclsError, match="class c has no training images"):
        class_weights("balanced", np.array([3, 4, 0]), ["a", "b", "c"])


def test_the_loss_options_of_the_recipe_are_those_the_losses_take():
    assert LOSSES.keys() == LOSS_TYPES.keys()
    for kind, functions in LOSSES.items():
        assert functions.keys() == LOSS_TYPES[kind].keys()
        for problem_type, per_image in functions.items():
            assert tuple(inspect.signature(per_image).parameters)[4:] == LOSS_TYPES[kind][problem_type]
