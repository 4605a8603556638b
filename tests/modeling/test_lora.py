"""hfcls.modeling.lora: which modules LoRA adapts by default and on request, what it trains, and the merge
every export goes through."""

import logging
import re

import pytest
import torch
from transformers import AutoConfig, AutoModelForImageClassification

import hfcls.modeling  # noqa: F401  hfcls's own architectures
from hfcls.errors import HfclsError
from hfcls.modeling.lora import add_lora, is_lora, merged

TINY = {
    "vit": {
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "image_size": 16,
        "patch_size": 4,
    },
    "resnet": {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "layer_type": "basic"},
    "convnext": {"hidden_sizes": [8, 16], "depths": [1, 1], "num_stages": 2},
    "mobilenet_v2": {"depth_multiplier": 0.35, "num_channels": 3},
    "lenet5": {},
}


def tiny_model(model_type, **config):
    torch.manual_seed(0)
    kwargs = {**TINY[model_type], **config}
    return AutoModelForImageClassification.from_config(AutoConfig.for_model(model_type, num_labels=3, **kwargs))


def lora(model, targets=None, r=2):
    return add_lora(model, {"r": r, "alpha": 4, "dropout": 0.0, "target_modules": targets})


def adapted(model) -> list:
    return sorted(name.removeprefix("base_model.model.") for name, m in model.named_modules() if hasattr(m, "lora_A"))


def test_attention_models_adapt_their_query_and_value_projections(caplog):
    with caplog.at_level(logging.INFO, "hfcls.modeling.lora"):
        model = lora(tiny_model("vit"))
    assert adapted(model) == [f"vit.layers.{i}.attention.{p}" for i in (0, 1) for p in ("q_proj", "v_proj")]
    # Adapters: per module A (r x 16) and B (16 x r), no bias; the head: 16 x 3 + 3.
    trained = {name for name, param in model.named_parameters() if param.requires_grad}
    assert len(trained) == 4 * 2 + 2 and all(".lora_" in name or "modules_to_save" in name for name in trained)
    line = re.search(
        r"on 4 modules \(q_proj, v_proj\): (\d+) parameters trained \((\d+) in the adapters, (\d+) in "
        r"the head classifier\), [\d.]+ % of the model's ([\d,]+)",
        caplog.text,
    )
    assert line is not None, caplog.text
    assert [int(g.replace(",", "")) for g in line.groups()] == [
        256 + 51,
        256,
        51,
        sum(p.numel() for p in tiny_model("vit").parameters()),
    ]


def test_convolutional_networks_adapt_every_dense_convolution_not_the_depthwise_ones():
    resnet = lora(tiny_model("resnet"))
    convolutions = [n for n, m in tiny_model("resnet").named_modules() if isinstance(m, torch.nn.Conv2d)]
    assert adapted(resnet) == sorted(convolutions) and len(convolutions) == 6
    convnext = adapted(lora(tiny_model("convnext")))
    assert not any("dwconv" in name for name in convnext)
    assert {name.rsplit(".", 1)[-1] for name in convnext} == {"patch_embeddings", "1", "pwconv1", "pwconv2"}
    # hfcls's own LeNet-5: its layers sit in Sequentials, named by index.
    assert adapted(lora(tiny_model("lenet5"))) == ["features.0", "features.3", "features.6"]


def test_given_names_adapt_every_module_they_end():
    model = lora(tiny_model("vit"), ["fc1", "attention.o_proj"])
    assert adapted(model) == [f"vit.layers.{i}.{p}" for i in (0, 1) for p in ("attention.o_proj", "mlp.fc1")]


@pytest.mark.parametrize(
    "model_type, config, targets, message",
    [
        (
            "vit",
            {},
            ["query"],
            "'query' matches no module of vit; modules LoRA can adapt: projection, q_proj, k_proj, "
            "v_proj, o_proj, fc1, fc2",
        ),
        ("vit", {}, ["layernorm_before"], "a LayerNorm, not a linear or convolution layer"),
        ("vit", {}, ["classifier"], "matches classifier, part of the head, which is trained whole"),
        ("convnext", {}, ["dwconv"], "a convolution with groups=8, which peft cannot merge back for export"),
        ("mobilenet_v2", {}, ["convolution"], "a model with tf_padding: true"),
    ],
)
def test_targets_lora_cannot_use_are_refused_naming_those_it_can(model_type, config, targets, message):
    with pytest.raises(HfclsError, match=re.escape(message)):
        lora(tiny_model(model_type, **config), targets)


def test_a_mobilenet_without_tensorflow_padding_adapts_its_dense_convolutions():
    model = lora(tiny_model("mobilenet_v2", tf_padding=False))
    x = torch.rand(1, 3, 32, 32)
    assert len(adapted(model)) > 10 and model.eval()(pixel_values=x).logits.shape == (1, 3)


def test_merged_is_a_plain_model_with_the_adapted_outputs_and_leaves_the_trained_one_alone():
    model = lora(tiny_model("vit"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.normal_()  # B starts at zero: a trained update, so the merge has something to fold in
    model.eval()
    x = torch.rand(4, 3, 16, 16)
    before = model(pixel_values=x).logits
    plain = merged(model)
    assert type(plain).__name__ == "ViTForImageClassification" and not is_lora(plain)
    assert not any("lora" in key or "modules_to_save" in key for key in plain.state_dict())
    torch.testing.assert_close(plain(pixel_values=x).logits, before, atol=1e-5, rtol=0)
    assert is_lora(model) and torch.equal(model(pixel_values=x).logits, before)
    assert merged(plain) is plain


def test_lora_without_peft_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "peft", None)
    with pytest.raises(
        HfclsError, match=re.escape("model.lora needs peft, which is not installed: pip install 'hfcls[lora]'")
    ):
        lora(tiny_model("resnet"))
