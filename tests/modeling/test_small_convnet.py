"""small_convnet (hfcls.modeling.small_convnet): its size and shapes, the scaled head, gradients,
a save/load round trip through the Auto classes, and the recipes' bf16 + channels_last step."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForImageClassification

import hfcls.modeling  # noqa: F401  registers small_convnet


def tiny(**overrides):
    torch.manual_seed(0)
    config = AutoConfig.for_model("small_convnet", num_labels=10, **overrides)
    return AutoModelForImageClassification.from_config(config)


def test_default_size_is_the_recipes_net():
    model = tiny()
    # stem 3x3x3x16; stages (conv + conv) 16/16, 16/32 + 32/32, 32/64 + 64/64, BatchNorm 2 per channel; head 64 x 10
    convs = 9 * (3 * 16 + 16 * 16 + 16 * 16 + 16 * 32 + 32 * 32 + 32 * 64 + 64 * 64)
    norms = 2 * (16 + 16 + 16 + 32 + 32 + 64 + 64)
    assert sum(p.numel() for p in model.parameters()) == convs + norms + 64 * 10 == 75_280


@pytest.mark.parametrize("size, pooled", [(32, [32, 16, 8, 4]), (28, [28, 14, 7, 3])])
def test_each_stage_halves_the_size_at_its_first_convolution(size, pooled):
    model = tiny().eval()
    x, sizes = torch.randn(1, 3, size, size), []
    for layer in model.features:
        x = layer(x)
        sizes.append(x.shape[-1])
    # stem, then (pooled conv, conv) per stage
    assert sizes == [pooled[0], pooled[1], pooled[1], pooled[2], pooled[2], pooled[3], pooled[3]]
    assert x.shape[1] == 64


def test_logits_are_the_scaled_max_pooled_head_and_the_loss_is_their_cross_entropy():
    model = tiny(logit_scale=0.25).eval()
    images, labels = torch.randn(3, 3, 32, 32), torch.tensor([1, 4, 9])
    out = model(images, labels=labels)
    features = model.features(images).amax(dim=(2, 3))
    assert torch.allclose(out.logits, 0.25 * features @ model.classifier.weight.T, atol=1e-6)
    assert model.classifier.bias is None
    assert torch.allclose(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))


def test_every_parameter_gets_a_gradient():
    model = tiny().train()
    out = model(torch.randn(4, 3, 28, 28), labels=torch.tensor([0, 1, 2, 3]))
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_bf16_channels_last_step_matches_fp32_closely():
    """What the small recipes train with (train.mixed_precision: bf16, train.channels_last)."""
    model = tiny().eval()
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = model(images).logits
        fast = model.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = fast(images.contiguous(memory_format=torch.channels_last)).logits
    assert got.dtype == torch.bfloat16
    assert (got.float() - expected).abs().max() < 0.05 * max(1.0, expected.abs().max().item())


def test_round_trips_through_the_auto_classes(tmp_path):
    model = tiny(stem_channels=8, hidden_sizes=[8, 16]).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    assert loaded.config.hidden_sizes == [8, 16] and loaded.config.logit_scale == 0.125
    images = torch.randn(2, 3, 32, 32)
    assert torch.equal(loaded(images).logits, model(images).logits)
    # Its module file travels beside the weights, for transformers alone (trust_remote_code)
    assert (tmp_path / "small_convnet.py").is_file()
    assert loaded.config.auto_map["AutoModelForImageClassification"].startswith("small_convnet.")
