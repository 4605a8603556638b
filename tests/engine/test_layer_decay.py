"""Layer-wise LR decay: every parameter of every family gets a layer id (embeddings 0, the head L, the
blocks in between in the order the input meets them), and the optimizer's LRs follow lr x decay^(L - id),
composed with lr_mult, frozen parameters and no weight decay on norms and biases."""

import pytest
from transformers import AutoConfig, AutoModelForImageClassification

from hfcls.engine.adapt import freeze
from hfcls.engine.layer_decay import layer_ids
from hfcls.engine.optim import build_optimizer
from hfcls.errors import HfclsError
from hfcls.models import head_parameter_names
from hfcls.recipe.schema import OptimSection

from families import NATIVE, TIMM, native_config

# family -> (L, the stem's prefix, what lies after the last block (with the head, at L), a few layers
# deeper in: {prefix: id}).
RULES = {
    "resnet": (3, "resnet.embedder.", ("classifier.",), {"resnet.encoder.stages.1.layers.0.": 2}),
    "regnet": (3, "regnet.embedder.", ("classifier.",), {"regnet.encoder.stages.0.layers.0.": 1}),
    "mobilenet_v2": (
        17,
        "mobilenet_v2.conv_stem.",
        ("classifier.", "mobilenet_v2.conv_1x1."),
        {"mobilenet_v2.layer.0.": 1, "mobilenet_v2.layer.15.": 16},
    ),
    "efficientnet": (
        8,
        "efficientnet.embeddings.",
        ("classifier.", "efficientnet.encoder.top_"),
        {"efficientnet.encoder.blocks.6.": 7},
    ),
    "vit": (2, "vit.embeddings.", ("classifier.", "vit.layernorm."), {"vit.layers.0.": 1}),
    "deit": (2, "deit.embeddings.", ("classifier.", "deit.layernorm."), {"deit.layers.0.": 1}),
    # patch merging closes its stage: after the stage's blocks, before the next stage's
    "swin": (
        4,
        "swin.embeddings.",
        ("classifier.", "swin.layernorm."),
        {"swin.encoder.layers.0.blocks.0.": 1, "swin.encoder.layers.0.downsample.": 2, "swin.encoder.layers.1.": 3},
    ),
    # the downsampling layer opens its stage
    "convnext": (
        4,
        "convnext.embeddings.",
        ("classifier.", "convnext.layernorm."),
        {"convnext.encoder.stages.0.": 1, "convnext.encoder.stages.1.downsampling_layer.": 2},
    ),
}


def tiny(model_type):
    if model_type in TIMM:
        config = AutoConfig.for_model(
            "timm_wrapper", architecture=model_type, model_args=TIMM[model_type], num_labels=3
        )
    else:
        config = native_config(model_type, ["a", "b", "c"])
    return AutoModelForImageClassification.from_config(config)


def lr_of(optimizer) -> dict:
    return {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}


def test_every_native_family_has_a_rule():
    assert set(RULES) == set(NATIVE)


@pytest.mark.parametrize("model_type", sorted(RULES))
def test_native_layers_and_lrs_follow_the_rule(model_type):
    last, stem, tail, deeper = RULES[model_type]
    model = tiny(model_type)
    ids, got_last = layer_ids(model)
    names = [name for name, _ in model.named_parameters()]
    assert got_last == last and sorted(ids) == sorted(names)
    assert {n for n in names if ids[n] == 0} == {n for n in names if n.startswith(stem)}
    assert {n for n in names if ids[n] == last} == {n for n in names if n.startswith(tail)}
    for prefix, layer in deeper.items():
        assert {ids[n] for n in names if n.startswith(prefix)} == {layer}, prefix
    assert set(ids.values()) == set(range(last + 1))  # every layer between holds something
    optimizer = build_optimizer(model, OptimSection(type="adamw", lr=2.0, layer_decay=0.5, weight_decay=0.05))
    lrs = lr_of(optimizer)
    for name, param in model.named_parameters():
        assert lrs[id(param)] == pytest.approx(2.0 * 0.5 ** (last - ids[name])), name


@pytest.mark.parametrize("architecture", sorted(TIMM))
def test_timm_models_use_their_own_group_matcher(architecture):
    model = tiny(architecture)
    ids, last = layer_ids(model)
    names = [name for name, _ in model.named_parameters()]
    assert sorted(ids) == sorted(names) and last == {"resnet18": 5, "vit_tiny_patch16_224": 3}[architecture]
    assert {n for n in names if ids[n] == last} == set(head_parameter_names(model))
    stem = {"resnet18": ("timm_model.conv1.", "timm_model.bn1."), "vit_tiny_patch16_224": ("timm_model.patch_embed.",)}
    assert all(ids[n] == 0 for n in names if n.startswith(stem[architecture]))
    optimizer = build_optimizer(model, OptimSection(type="adamw", lr=1.0, layer_decay=0.75))
    lrs = lr_of(optimizer)
    assert all(lrs[id(p)] == pytest.approx(0.75 ** (last - ids[n])) for n, p in model.named_parameters())


def test_layer_decay_composes_with_lr_mult_frozen_and_no_decay_on_norms_and_biases():
    model = tiny("resnet")
    freeze(model, OptimSection(frozen=["resnet.embedder."]))
    optim = OptimSection(
        type="sgd",
        lr=1.0,
        layer_decay=0.5,
        lr_mult={"resnet.encoder.stages.1.": 3.0},
        weight_decay=0.01,
        decay_norm_and_bias=False,
    )
    optimizer = build_optimizer(model, optim)
    lrs, decays = lr_of(optimizer), {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    params = dict(model.named_parameters())
    assert not any(id(params[n]) in lrs for n in params if n.startswith("resnet.embedder."))  # frozen: left out
    stage0, stage1 = "resnet.encoder.stages.0.layers.0.layer.0.", "resnet.encoder.stages.1.layers.0.layer.0."
    assert lrs[id(params[stage0 + "convolution.weight"])] == pytest.approx(0.25)  # 0.5^(3 - 1)
    assert lrs[id(params[stage1 + "convolution.weight"])] == pytest.approx(3.0 * 0.5)  # lr_mult x 0.5^(3 - 2)
    assert lrs[id(params["classifier.1.weight"])] == pytest.approx(1.0)
    assert decays[id(params[stage1 + "convolution.weight"])] == 0.01
    assert decays[id(params[stage1 + "normalization.weight"])] == 0.0
    assert optimizer.param_groups[0]["lr"] == 1.0  # groups at the base LR first


def test_a_family_without_a_rule_is_named():
    model = AutoModelForImageClassification.from_config(AutoConfig.for_model("lenet5", num_channels=3, num_labels=3))
    with pytest.raises(HfclsError, match=r"^optim.layer_decay: hfcls knows no layers of lenet5 \(it has rules for"):
        build_optimizer(model, OptimSection(layer_decay=0.65))
