"""One pass: scores, logits and the head's input (features) from the same forward calls, and a loader's
predictions with their labels and valid mask, in order."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForImageClassification

from hfcls.errors import HfclsError
from hfcls.labels import SINGLE_LABEL
from hfcls.predict.forward import forward_batch, predict
from hfcls.predict.inputs import ModelInputs

INPUTS = ModelInputs([0.5, 0.4, 0.3], [0.2, 0.25, 0.3])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = AutoConfig.for_model("resnet", embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3)
    return AutoModelForImageClassification.from_config(config).eval()


@pytest.fixture(scope="module")
def pixels():
    return torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def two_pass_features(model, pixels):
    """Features as evaluation read them before: a second forward pass, the head's input caught on the way."""
    seen = []
    hook = model.classifier.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    with torch.inference_mode():
        model(pixel_values=INPUTS(pixels))
    hook.remove()
    return seen[0].flatten(1).float()


@pytest.mark.parametrize("tta", [(), ("flip", "crops")])
def test_features_come_from_the_pass_that_scores(model, pixels, tta):
    calls = []
    counter = model.register_forward_hook(lambda module, args, out: calls.append(1))
    with torch.inference_mode():
        alone = forward_batch(model, pixels, INPUTS, SINGLE_LABEL, tta=tta)
        calls.clear()
        out = forward_batch(model, pixels, INPUTS, SINGLE_LABEL, tta=tta, features=True)
    counter.remove()
    assert len(calls) == (12 if tta else 1)  # no pass of its own for the features
    assert out.features.shape == (6, 16) and torch.equal(out.features, two_pass_features(model, pixels))
    assert torch.equal(out.scores, alone.scores)
    assert not model.classifier._forward_pre_hooks  # the hook is gone after the pass


def test_scores_and_logits_of_a_batch(model, pixels):
    with torch.inference_mode():
        out = forward_batch(model, pixels, INPUTS, SINGLE_LABEL)
        logits = model(pixel_values=INPUTS(pixels)).logits
    assert torch.equal(out.logits, logits) and torch.equal(out.scores, logits.softmax(dim=-1))
    assert out.features is None


def test_predict_keeps_the_loader_order_labels_and_valid_mask(model, pixels):
    batches = [
        {
            "pixel_values": pixels[:4],
            "labels": torch.tensor([0, 1, 2, 0]),
            "valid": torch.ones(4, dtype=bool),
            "bad_files": [],
        },
        {
            "pixel_values": pixels[4:],
            "labels": torch.tensor([1, 2]),
            "valid": torch.tensor([True, False]),
            "bad_files": ["broken.png"],
        },
    ]
    got = predict(model, batches, INPUTS, features=True, skip_bad_images=True)
    with torch.inference_mode():
        whole = forward_batch(model, pixels, INPUTS, SINGLE_LABEL, features=True)
    assert got.labels.tolist() == [0, 1, 2, 0, 1, 2] and got.valid.tolist() == [True] * 5 + [False]
    torch.testing.assert_close(got.scores, whole.scores)
    torch.testing.assert_close(got.features, whole.features)
    with pytest.raises(HfclsError, match="cannot decode image broken.png; remove or replace it"):
        predict(model, batches, INPUTS)


def test_a_model_without_a_head_module_has_no_features(pixels):
    headless = torch.nn.Module()
    headless.config = AutoConfig.for_model("resnet")
    with pytest.raises(HfclsError, match="resnet: no `classifier` head module whose input could be read as features"):
        forward_batch(headless, pixels, INPUTS, SINGLE_LABEL, features=True)
