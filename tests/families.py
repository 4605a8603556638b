"""Tiny models of every family hfcls trains: transformers' own, hfcls's, and timm's through TimmWrapper.

A few thousand parameters each, at 32 x 32 pixels: enough to run every code path of a family.
"""

import json
from pathlib import Path

# Tiny configs of every family of the zoo (DeiT as both the zoo's vit form and transformers' deit).
FAMILIES = {
    "resnet": dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic"),
    "mobilenet_v2": dict(depth_multiplier=0.25, image_size=32),
    "efficientnet": dict(width_coefficient=0.1, depth_coefficient=0.1, image_size=32, hidden_dim=128),
    "regnet": dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], groups_width=8),
    "vit": dict(
        image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
    ),
    "deit": dict(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        architectures=["DeiTForImageClassification"],
    ),
    "swin": dict(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4),
    "convnext": dict(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
    "cifar_resnet": dict(stem_channels=8, hidden_sizes=[8, 16], depths=[1, 1]),
    "lenet5": dict(num_channels=3),
    "small_convnet": dict(stem_channels=8, hidden_sizes=[8, 16]),
}
# The families of transformers itself, whose Hub checkpoints hfcls fine-tunes.
NATIVE = ("resnet", "mobilenet_v2", "efficientnet", "regnet", "vit", "deit", "swin", "convnext")

# timm architectures shrunk through their constructors' keywords (the config's model_args).
TIMM = {
    "resnet18": dict(layers=[1, 1, 1, 1], channels=[8, 8, 16, 16], stem_width=8),
    "vit_tiny_patch16_224": dict(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2),
}


def native_config(model_type: str, class_names: list, **changes):
    from transformers import AutoConfig

    from hfcls.labels import label_maps

    return AutoConfig.for_model(model_type, **{**FAMILIES[model_type], **changes}, **label_maps(class_names))


def timm_folder(folder: Path, architecture: str, num_classes: int = 5, seed: int = 0, **shrink) -> Path:
    """A "pretrained" timm model in timm's Hub layout (timm.models.save_for_hf): config.json with its
    model_args (num_classes among them, as timm writes it) and pretrained_cfg, and model.safetensors.
    `shrink`: the constructor keywords that make it tiny (default TIMM's)."""
    import timm
    import torch

    torch.manual_seed(seed)
    shrink = shrink or TIMM[architecture]
    model = timm.create_model(architecture, pretrained=False, num_classes=num_classes, **shrink)
    timm.models.save_for_hf(model, folder, safe_serialization=True)
    assert json.loads((folder / "config.json").read_text())["model_args"]["num_classes"] == num_classes
    return folder


def native_folder(folder: Path, model_type: str, class_names: list, seed: int = 0, **config) -> Path:
    """A "pretrained" transformers model of the family, saved as a Hugging Face folder. Its convolutions
    have He-initialised weights, its BatchNorm layers unit scales and the statistics of a few random
    batches, as a trained model's are of its data: from transformers' initialisation of EfficientNet
    (every weight, BatchNorm scales too, drawn with std 0.02) its activations vanish, whatever the image.
    `config`: settings that replace FAMILIES' (another image size, ...)."""
    import torch
    from transformers import AutoModelForImageClassification

    import hfcls.modeling  # noqa: F401  hfcls's own families

    torch.manual_seed(seed)
    model = AutoModelForImageClassification.from_config(native_config(model_type, class_names, **config))
    size = getattr(model.config, "image_size", 32)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight)
        elif isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
    with torch.no_grad():
        for _ in range(3):
            model.train()(pixel_values=torch.randn(8, 3, size, size))
    model.save_pretrained(folder)
    return folder
