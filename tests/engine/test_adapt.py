"""Model adaptations before training: frozen parameters out of the optimizer and their modules held in
eval mode (BatchNorm statistics bit-identical after a real run), gradient checkpointing on or refused."""

import copy

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModelForImageClassification

from hfcls.api import train
from hfcls.engine.adapt import OnePixelConv2d, freeze, one_pixel_convs, relu_in_place
from hfcls.engine.optim import build_optimizer
from hfcls.engine.setup import adapt_model
from hfcls.errors import HfclsError
from hfcls.recipe import recipe_from_dict
from hfcls.recipe.schema import OptimSection, TrainSection

from conftest import tiny_recipe_dict
from families import TIMM, native_config, native_folder


def probe_model():
    """A backbone (conv, BatchNorm, dropout) and a head, like a classifier's base model and head."""
    net = torch.nn.Module()
    net.backbone = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Dropout(0.5), torch.nn.Conv2d(4, 4, 1)
    )
    net.head = torch.nn.Sequential(torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(36, 2))
    return net


def forward(net, x):
    return net.head(net.backbone(x))


def test_frozen_prefixes_leave_parameters_out_of_training():
    net = probe_model()
    held = freeze(net, OptimSection(type="adamw", frozen=["backbone.0."]))
    assert [n for n, p in net.named_parameters() if not p.requires_grad] == ["backbone.0.weight", "backbone.0.bias"]
    assert held == ["backbone.0"]
    optimizer = build_optimizer(net, OptimSection(type="adamw"))
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert trained == {id(p) for n, p in net.named_parameters() if not n.startswith("backbone.0.")}


def test_a_frozen_prefix_that_matches_nothing_names_the_names():
    with pytest.raises(HfclsError, match=r"^optim.frozen: no parameter name starts with 'backbon.'.*backbone.0.weight"):
        freeze(probe_model(), OptimSection(frozen=["backbon."]))


def test_frozen_modules_stay_in_eval_mode_and_their_statistics_stay_put():
    net = probe_model()
    assert freeze(net, OptimSection(frozen=["backbone."])) == ["backbone"]
    before = copy.deepcopy(net.backbone[1].state_dict())
    net.train()
    assert not any(m.training for m in net.backbone.modules())  # BatchNorm and dropout alike
    assert all(m.training for m in net.head.modules())
    x = torch.randn(8, 3, 5, 5)
    forward(net, x)
    assert all(torch.equal(before[k], v) for k, v in net.backbone[1].state_dict().items())
    assert torch.equal(net.backbone(x), net.backbone(x))  # no dropout: eval mode
    copied = copy.deepcopy(net)  # as the EMA copies the model: it keeps the rule, for its own modules
    copied.train()
    assert not copied.backbone.training and copied.head.training


def test_frozen_eval_false_lets_frozen_modules_follow_the_model():
    net = probe_model()
    assert freeze(net, OptimSection(frozen=["backbone."], frozen_eval=False)) == []
    net.train()
    forward(net, torch.randn(8, 3, 5, 5))
    assert net.backbone.training and net.backbone[1].num_batches_tracked == 1  # statistics moved


def test_frozen_batchnorm_buffers_are_bit_identical_after_a_real_run(tmp_path, tiny_data):
    """A fine-tune of a "pretrained" ResNet with its stem and first stage frozen: every tensor of
    those (weights and BatchNorm statistics) leaves training as it came; the second stage's moved."""
    source = native_folder(tmp_path / "pretrained", "resnet", ["a", "b", "c", "d"])
    recipe = tiny_recipe_dict(
        *tiny_data,
        model={"pretrained": str(source)},
        optim={"frozen": ["resnet.embedder.", "resnet.encoder.stages.0."]},
        train={"epochs": 1},
    )
    del recipe["model"]["config"]
    train(recipe_from_dict(recipe), tmp_path / "run")
    before, after = (
        load_file(source / "model.safetensors"),
        load_file(tmp_path / "run" / "latest" / "model.safetensors"),
    )
    frozen = [k for k in after if k.startswith(("resnet.embedder.", "resnet.encoder.stages.0."))]
    assert any(k.endswith("running_var") for k in frozen) and len(frozen) == 18
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    stage = "resnet.encoder.stages.1.layers.0.layer.0.normalization"
    assert not torch.equal(before[f"{stage}.running_mean"], after[f"{stage}.running_mean"])
    assert not torch.equal(before[f"{stage}.weight"], after[f"{stage}.weight"])


def tiny_model(model_type):
    torch.manual_seed(0)
    if model_type == "timm_wrapper":
        config = AutoConfig.for_model(
            "timm_wrapper", architecture="vit_tiny_patch16_224", model_args=TIMM["vit_tiny_patch16_224"], num_labels=3
        )
    else:
        config = native_config(model_type, ["a", "b", "c"], hidden_dropout_prob=0.0)
    return AutoModelForImageClassification.from_config(config)


@pytest.mark.parametrize("model_type", ["vit", "timm_wrapper"])
def test_gradient_checkpointing_recomputes_to_the_same_gradients(model_type):
    x, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])

    def gradients(checkpointing):
        model = adapt_model(tiny_model(model_type), TrainSection(gradient_checkpointing=checkpointing), 1, "cpu")
        model.train()
        model(pixel_values=x, labels=labels).loss.backward()
        return model, {n: p.grad for n, p in model.named_parameters()}

    plain, expected = gradients(False)
    checkpointed, got = gradients(True)
    if model_type == "timm_wrapper":  # timm's own switch
        assert checkpointed.timm_model.grad_checkpointing and not plain.timm_model.grad_checkpointing
    else:
        assert checkpointed.is_gradient_checkpointing and not plain.is_gradient_checkpointing
    assert all(torch.allclose(got[n], expected[n], atol=1e-6) for n in expected)


def test_gradient_checkpointing_on_a_model_without_it_is_one_line():
    with pytest.raises(
        HfclsError, match=r"^train.gradient_checkpointing: resnet \(ResNetForImageClassification\) cannot recompute"
    ):
        adapt_model(tiny_model("resnet"), TrainSection(gradient_checkpointing=True), 1, "cpu")


@pytest.mark.parametrize("layer_type", ["basic", "bottleneck"])
def test_relus_in_place_leave_outputs_and_gradients_as_they_were(layer_type):
    """Every ReLU of transformers' ResNet runs in place, and the forward pass, its hidden states and
    every gradient are bit for bit those of the model as built."""
    x, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])

    def run(adapted):
        torch.manual_seed(0)
        config = native_config("resnet", ["a", "b", "c"], layer_type=layer_type)
        model = AutoModelForImageClassification.from_config(config)
        model = adapt_model(model, TrainSection(), 1, "cpu") if adapted else model
        out = model.train()(pixel_values=x, labels=labels, output_hidden_states=True)
        out.loss.backward()
        relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
        return out, {n: p.grad for n, p in model.named_parameters()}, relus

    built, built_grads, built_relus = run(False)
    adapted, grads, relus = run(True)
    assert relus and all(relu.inplace for relu in relus) and not any(relu.inplace for relu in built_relus)
    assert torch.equal(adapted.logits, built.logits)
    assert all(torch.equal(a, b) for a, b in zip(adapted.hidden_states, built.hidden_states, strict=True))
    assert all(torch.equal(grads[n], built_grads[n]) for n in built_grads)


@pytest.mark.parametrize("model_type", ["vit", "convnext", "timm_wrapper"])
def test_relus_stay_as_built_outside_the_architectures_checked(model_type):
    assert relu_in_place(tiny_model(model_type)) == 0


# (kernel, stride, padding, input side, the window of it the one output pixel sees; None: larger output)
ONE_PIXEL_CASES = [
    (3, 1, 1, 1, (1, 1)),  # a ResNet's 3x3 on its last 1x1 map: the centre tap
    (3, 2, 1, 2, (2, 2)),  # its stride-2 3x3 from 2x2 down to 1x1: the lower-right 2x2 taps
    (1, 2, 0, 2, (1, 1)),  # its 1x1 stride-2 shortcut from 2x2
    (1, 1, 0, 1, (1, 1)),
    (3, 1, 0, 3, (3, 3)),  # every tap in bounds
    ((3, 1), (1, 1), (1, 0), (1, 1), (1, 1)),  # a rectangular kernel
    (7, 2, 3, 3, None),  # a 2x2 output: the convolution
    (3, 1, 1, 4, None),
]


@pytest.mark.parametrize("kernel, stride, padding, side, window", ONE_PIXEL_CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_a_one_pixel_convolution_gives_the_convolutions_outputs_and_gradients(
    kernel, stride, padding, side, window, channels_last
):
    torch.manual_seed(0)
    built = torch.nn.Conv2d(5, 6, kernel, stride, padding)
    built = built.to(memory_format=torch.channels_last) if channels_last else built  # its taps are read as stored
    adapted = copy.deepcopy(built)
    assert one_pixel_convs(adapted) == 1 and type(adapted) is OnePixelConv2d
    height, width = (side, side) if isinstance(side, int) else side
    x = torch.randn(3, 5, height, width)
    x = x.to(memory_format=torch.channels_last) if channels_last else x
    assert adapted._one_pixel_window(x) == window
    outputs, grads = [], []
    for conv in (built, adapted):
        pixels = x.clone().requires_grad_(True)
        out = conv(pixels)
        (out * torch.arange(out.numel()).reshape(out.shape)).sum().backward()
        outputs.append(out)
        grads.append((pixels.grad, conv.weight.grad, conv.bias.grad))
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    for adapted_grad, built_grad in zip(grads[1], grads[0], strict=True):
        torch.testing.assert_close(adapted_grad, built_grad, rtol=1e-5, atol=1e-5)
    if window is not None:  # the taps over padding saw only zeros: exactly zero gradients, as in the convolution
        seen = torch.zeros_like(built.weight, dtype=torch.bool)
        seen[:, :, built.padding[0] : built.padding[0] + window[0], built.padding[1] : built.padding[1] + window[1]] = (
            True
        )
        assert torch.equal(grads[1][1][~seen], torch.zeros_like(grads[1][1][~seen]))


def test_convolutions_it_cannot_compute_as_a_product_stay_as_built():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(4, 4, 3, groups=2),
        torch.nn.Conv2d(4, 4, 3, dilation=2),
        torch.nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"),
        torch.nn.Conv2d(4, 4, 3, padding="same"),
        torch.nn.Conv1d(4, 4, 3),
        torch.nn.Conv2d(4, 4, 3),
    )
    assert one_pixel_convs(net) == 1
    assert [type(m) for m in net] == [torch.nn.Conv2d] * 4 + [torch.nn.Conv1d, OnePixelConv2d]
    assert OnePixelConv2d(4, 4, 3)._one_pixel_window(torch.zeros(4, 3, 3)) is None  # unbatched


@pytest.mark.parametrize("layer_type", ["basic", "bottleneck"])
def test_a_resnet_trained_on_cpu_at_32_px_computes_its_last_stage_as_products(layer_type):
    """Four stages bring 32 px to a 1x1 map: on CPU, adapt_model turns those convolutions into products,
    the logits and every gradient stay those of the model as built, the state dict keeps its keys, and
    on a GPU the model keeps its convolutions."""
    config = native_config(
        "resnet", ["a", "b", "c"], layer_type=layer_type, hidden_sizes=[8, 8, 16, 16], depths=[1, 1, 1, 1]
    )
    x, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])

    def run(device_type):
        torch.manual_seed(0)
        model = AutoModelForImageClassification.from_config(config)
        model = adapt_model(model, TrainSection(channels_last=True), 1, device_type) if device_type else model
        out = model.train()(pixel_values=x.to(memory_format=torch.channels_last), labels=labels)
        out.loss.backward()
        return model, out.logits, {n: p.grad for n, p in model.named_parameters()}

    built, built_logits, built_grads = run(None)
    adapted, logits, grads = run("cpu")
    last_stage = [n for n, m in adapted.named_modules() if isinstance(m, OnePixelConv2d) and "stages.3" in n]
    assert last_stage and all(
        isinstance(m, OnePixelConv2d) for m in adapted.modules() if isinstance(m, torch.nn.Conv2d)
    )
    assert list(adapted.state_dict()) == list(built.state_dict())
    torch.testing.assert_close(logits, built_logits, rtol=1e-5, atol=1e-5)
    for name, grad in built_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-4, atol=1e-5, msg=name)
    on_gpu, _, _ = run("cuda")
    assert not any(isinstance(m, OnePixelConv2d) for m in on_gpu.modules())
