"""Every recipe under recipes/ resolves, builds its model from config at the reference
size, and trains one step; the custom models save, load and register like any other."""

import inspect
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForImageClassification
from transformers.modeling_outputs import ImageClassifierOutput

from hfcls.errors import HfclsError
from hfcls.models import build_model
from hfcls.recipe import load_recipe

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
# The recipes that build their model from a config; recipes/finetune/ starts from Hub models (below).
ZOO = sorted(p for p in RECIPES.rglob("*.yaml") if not {"_base_", "finetune"} & set(p.relative_to(RECIPES).parts))
FINETUNE = sorted((RECIPES / "finetune").glob("*.yaml"))

CLASSES = {
    "imagenet": 1000,
    "cifar10": 10,
    "cifar100": 100,
    "mnist": 10,
    "digits": 10,
    "imbalanced_digits": 10,
    "multilabel_digits": 10,
    "voc": 20,
    "small": 10,
}

# Millions of parameters: MMClassification's model zoo, torchvision, timm.
REFERENCE_PARAMS = {
    "resnet18_8xb32_in1k": 11.69,
    "resnet34_8xb32_in1k": 21.80,
    "resnet50_8xb32_in1k": 25.56,
    "resnet50_8xb32-lbs-mixup-cutmix-coslr_in1k": 25.56,
    "resnet101_8xb32_in1k": 44.55,
    "resnet152_8xb32_in1k": 60.19,
    "mobilenet-v2_8xb32_in1k": 3.50,
    "efficientnet-b0_8xb32_in1k": 5.29,
    "regnetx-400mf_8xb128_in1k": 5.16,
    "vit-base-p16_64xb64_in1k": 86.57,
    "deit-small_4xb256_in1k": 22.05,
    "swin-tiny_16xb64_in1k": 28.29,
    "convnext-tiny_32xb128_in1k": 28.59,
    "resnet18_8xb16_cifar10": 11.17,
    "resnet18_8xb16_cifar100": 11.22,
    "lenet5_1xb128_mnist": 0.06,  # 61,706 on 1 channel; 62,006 on RGB
    "resnet-tiny_1xb64_digits": 0.08,
    "resnet-tiny_1xb64_imbalanced-digits": 0.08,
    "resnet-tiny_1xb64_imbalanced-digits_class-balanced": 0.08,
    "resnet-tiny_1xb64_imbalanced-digits_class-weights": 0.08,
    "resnet-tiny_1xb64_multilabel-digits": 0.08,
    "resnet50_8xb16_voc": 23.55,
    "small-convnet_1xb64_digits": 0.08,  # 75,280
    "small-convnet_1xb128_mnist": 0.08,
    "small-convnet_1xb128_mnist-5k": 0.08,
    "small-convnet_1xb128_fashion-mnist": 0.08,
    "small-convnet_1xb128_cifar10": 0.08,  # 25.56 less 980 of the 1000 classes' head (2048 x 980 + 980)
}


def class_names(recipe_path: Path) -> list:
    return [f"class_{i}" for i in range(CLASSES[recipe_path.parent.name])]


def test_every_recipe_has_a_reference():
    assert {p.stem for p in ZOO} == set(REFERENCE_PARAMS)


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_recipe_builds_reference_model_and_trains_a_step(path):
    recipe = load_recipe(path)
    torch.manual_seed(0)
    model = build_model(recipe.model, class_names(path))
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert round(params, 2) == REFERENCE_PARAMS[path.stem]
    assert model.config.num_labels == CLASSES[path.parent.name]

    # 32x32 keeps 17 models inside CI's time; ViTs interpolate their position
    # embeddings to it. Swin lays its attention windows out for config.image_size.
    size = model.config.image_size if model.config.model_type == "swin" else 32
    forward_args = inspect.signature(model.forward).parameters
    kwargs = {"interpolate_pos_encoding": True} if "interpolate_pos_encoding" in forward_args else {}
    labels = torch.tensor([0, 1])
    out = model(pixel_values=torch.randn(2, 3, size, size), labels=labels, **kwargs)
    assert out.logits.shape == (2, CLASSES[path.parent.name])
    torch.nn.functional.cross_entropy(out.logits, labels).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize(
    "model_type, params", [("cifar_resnet", 11_173_962), ("lenet5", 61_706), ("small_convnet", 75_280)]
)
def test_custom_model_registered_and_round_trips(tmp_path, model_type, params):
    config = AutoConfig.for_model(model_type, num_labels=10)
    model = AutoModelForImageClassification.from_config(config).eval()
    assert sum(p.numel() for p in model.parameters()) == params

    images = torch.randn(2, config.num_channels, 32, 32)
    out = model(images, labels=torch.tensor([3, 7]))
    assert isinstance(out, ImageClassifierOutput)
    assert out.logits.shape == (2, 10)
    expected_loss = torch.nn.functional.cross_entropy(out.logits, torch.tensor([3, 7]))
    assert torch.allclose(out.loss, expected_loss)

    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(model)
    assert loaded.config.model_type == model_type
    assert torch.equal(loaded(images).logits, model(images).logits)


def test_cifar_resnet_keeps_resolution_into_first_stage():
    config = AutoConfig.for_model("cifar_resnet", num_labels=10, hidden_sizes=[8, 16], depths=[1, 1], stem_channels=8)
    model = AutoModelForImageClassification.from_config(config)
    features = model.stem(torch.randn(1, 3, 32, 32))
    assert features.shape == (1, 8, 32, 32)  # 3x3 stride-1 stem, no max-pool
    assert model.stages(features).shape == (1, 16, 16, 16)


USER_MODEL = """
from torch import nn
from transformers import AutoConfig, AutoModelForImageClassification, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput


class TinyNetConfig(PreTrainedConfig):
    model_type = "tinynet"
    width: int = 4


class TinyNet(PreTrainedModel):
    config_class = TinyNetConfig
    main_input_name = "pixel_values"

    def __init__(self, config):
        super().__init__(config)
        self.conv = nn.Conv2d(3, config.width, 3)
        self.head = nn.Linear(config.width, config.num_labels)
        self.post_init()

    def forward(self, pixel_values, labels=None, **kwargs):
        return ImageClassifierOutput(logits=self.head(self.conv(pixel_values).mean(dim=(2, 3))))


AutoConfig.register("tinynet", TinyNetConfig)
AutoModelForImageClassification.register(TinyNetConfig, TinyNet)
"""


def test_a_users_model_file_is_named_in_a_recipe(tmp_path, monkeypatch):
    """The new-modules tutorial's example: a file, two register calls, custom_imports."""
    (tmp_path / "my_models.py").write_text(USER_MODEL)
    (tmp_path / "tinynet.yaml").write_text(
        "custom_imports: [my_models]\nmodel:\n  config: {model_type: tinynet, width: 6}\n"
    )
    monkeypatch.chdir(tmp_path)
    # Found through the current directory, as with the hfcls-train command.
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    model = build_model(load_recipe(tmp_path / "tinynet.yaml").model, ["a", "b"])
    assert type(model).__name__ == "TinyNet"
    assert sum(p.numel() for p in model.parameters()) == (3 * 9 * 6 + 6) + (6 * 2 + 2)
    assert model(torch.randn(1, 3, 8, 8)).logits.shape == (1, 2)


def test_custom_import_that_fails_names_the_key(tmp_path):
    (tmp_path / "r.yaml").write_text("custom_imports: [no_such_models]\nmodel:\n  config: {model_type: resnet}\n")
    with pytest.raises(HfclsError, match=r"custom_imports: cannot import no_such_models .*PYTHONPATH"):
        load_recipe(tmp_path / "r.yaml")


# ----------------------------------------------------------------------------- the fine-tuning recipes

# Each fine-tuning recipe's Hub model (they cannot be downloaded here), and a tiny model of the same
# architecture at the same input size that stands in for it: (model_type or timm:<architecture>, its
# settings: for a transformers family, the changes to families.FAMILIES' tiny config).
STAND_INS = {
    "vit-base-p16_in21k-pre_4xb64_custom": (
        "google/vit-base-patch16-224-in21k",
        "vit",
        dict(image_size=224, patch_size=16, num_hidden_layers=2),
    ),
    "convnext-tiny_in1k-pre_4xb64_custom": ("facebook/convnext-tiny-224", "convnext", dict(depths=[1, 2])),
    "swin-tiny_in1k-pre_4xb64_custom": (
        "microsoft/swin-tiny-patch4-window7-224",
        "swin",
        dict(image_size=224, window_size=7),
    ),
    "resnet50-a1_in1k-pre_4xb64_custom": (
        "timm/resnet50.a1_in1k",
        "timm:resnet50",
        dict(layers=[1, 1, 1, 1], channels=[4, 4, 8, 8], stem_width=8),
    ),
    "vit-small-p16-augreg_in21k-pre_4xb64_custom": (
        "timm/vit_small_patch16_224.augreg_in21k",
        "timm:vit_small_patch16_224",
        dict(embed_dim=16, depth=2, num_heads=2),
    ),
}


def test_every_fine_tuning_recipe_has_a_stand_in():
    assert {p.stem for p in FINETUNE} == set(STAND_INS)


@pytest.mark.parametrize("path", FINETUNE, ids=[p.stem for p in FINETUNE])
def test_fine_tuning_recipe_builds_its_architecture_and_takes_a_step(path, tmp_path):
    """The recipe resolves and names its Hub model; from a tiny pretrained model of that architecture
    it builds with its config_overrides (checked against the real config class), freezes, adapts,
    groups its parameters by layer decay for its optimizer and takes a step on images its training
    pipeline made."""
    from hfcls.data.transforms import build_pipeline
    from hfcls.engine.adapt import freeze
    from hfcls.engine.layer_decay import layer_ids
    from hfcls.engine.optim import build_optimizer, build_scheduler
    from hfcls.engine.setup import adapt_model
    from hfcls.predict.inputs import recipe_inputs

    from families import native_folder, timm_folder

    hub_id, kind, settings = STAND_INS[path.stem]
    assert load_recipe(path).model.pretrained == hub_id
    if kind.startswith("timm:"):
        folder = timm_folder(tmp_path / "pretrained", kind.removeprefix("timm:"), num_classes=11, **settings)
    else:
        folder = native_folder(tmp_path / "pretrained", kind, [f"c{i}" for i in range(11)], **settings)
    recipe = load_recipe(path, [f"model.pretrained={folder}"])
    names = ["a", "b", "c"]
    torch.manual_seed(0)
    model = build_model(recipe.model, names)
    overrides = recipe.model.config_overrides
    for key, value in overrides.items():
        assert (model.config.model_args if kind.startswith("timm:") else model.config.to_dict())[key] == value
    freeze(model, recipe.optim)
    model = adapt_model(model, recipe.train, 1, "cpu").train()
    optimizer = build_optimizer(model, recipe.optim)
    assert len({group["lr"] for group in optimizer.param_groups}) > 2  # layer decay: LRs by depth
    augment = build_pipeline(recipe.data.train_pipeline)
    images = torch.stack([augment(torch.randint(0, 256, (3, 260, 300), dtype=torch.uint8)) for _ in range(2)])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = model(pixel_values=recipe_inputs(recipe, "cpu")(images), labels=torch.tensor([0, 2])).loss
    loss.backward()
    optimizer.step()  # at the recipe's LRs: a warm-up would start the schedule at 0
    assert torch.isfinite(loss) and model.config.num_labels == 3
    ids, _ = layer_ids(model)
    moved = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert {n for n in ids if ids[n] == 0} & moved and len(moved) > len(before) // 2  # the stem too, at its LR
    scheduler = build_scheduler(optimizer, recipe.schedule, recipe.train.epochs, steps_per_epoch=10)
    scheduler.step()


def test_a_pretrained_model_without_an_image_classification_form_is_one_line(tmp_path):
    from transformers import BertConfig

    from hfcls.models import load_pretrained

    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8).save_pretrained(tmp_path)
    with pytest.raises(HfclsError, match=r"^model.pretrained: .* \(bert\) has no image-classification form"):
        load_pretrained(str(tmp_path), {"num_labels": 2, "id2label": {0: "a", 1: "b"}, "label2id": {"a": 0, "b": 1}})
