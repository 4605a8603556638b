"""Grad-CAM on the digits model: the map sits on the stroke, not the black background; every
method runs; a transformer's tokens become a grid; a wrong --layer lists close names."""

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForImageClassification

from hfcls.analysis.cam import class_activation_map, default_layer, reshape_transform, save_overlay
from hfcls.errors import HfclsError

from conftest import TINY_CIFAR_RESNET, shared_once, tiny_recipe_dict, write_recipe
from families import FAMILIES


@pytest.fixture(scope="module")
def digits_cifar_resnet(tmp_path_factory, digits_dir):
    """best/ of hfcls's CIFAR ResNet trained 6 epochs (98 % top-1) on the 16 x 16 digits: no stem downsampling, so its
    last stage keeps an 8 x 8 map, fine enough to tell a stroke from the background (the tiny ResNet's is 2 x 2)."""

    def build(root):
        from hfcls.api import train
        from hfcls.recipe import load_recipe

        resize = [{"type": "Resize", "size": 16}]
        write_recipe(
            root / "r.yaml",
            tiny_recipe_dict(
                digits_dir / "train",
                digits_dir / "val",
                model={"config": TINY_CIFAR_RESNET},
                data={"batch_size": 32, "train_pipeline": resize, "eval_pipeline": resize},
                train={"epochs": 6},
            ),
        )
        train(load_recipe(root / "r.yaml"), root / "work")

    return shared_once(tmp_path_factory, "digits_cifar_resnet", build) / "work" / "best"


def test_the_map_peaks_on_the_stroke(digits_cifar_resnet, val_files):
    """Over 8 digits the heat sits on the ink, clearly (a map blind to the image scores 0 here). Not on
    every digit: a 0 is told by its hole, and this 8 x 8 map, upsampled, blurs onto the background."""
    margins = []
    for index in range(0, 360, 45):  # 8 images of different digits
        result = class_activation_map(val_files[index], digits_cifar_resnet)
        ink = result.image.mean(axis=2) > 96  # digits are bright strokes on black
        assert result.layer == "stages.1" and result.heatmap.shape == ink.shape == (16, 16)
        margins.append(result.heatmap[ink].mean() - result.heatmap[~ink].mean())
    assert np.mean(margins) > 0.05 and sum(m > 0 for m in margins) >= 6, margins


@pytest.mark.parametrize("method", ["gradcam++", "scorecam", "eigencam"])
def test_every_method_draws(trained_digits, val_files, tmp_path, method):
    result = class_activation_map(val_files[0], trained_digits[1] / "best", method=method, target_class="0")
    assert result.target == 0 and result.label == "0" and 0 <= result.heatmap.min() <= result.heatmap.max() <= 1
    assert save_overlay(result, tmp_path / "cam.png").stat().st_size > 2000


def test_a_wrong_layer_lists_close_names(trained_digits, val_files):
    with pytest.raises(
        HfclsError, match="resnet.encoder.stage.0: resnet has no module.*close names: resnet.encoder.stages.0"
    ):
        class_activation_map(val_files[0], trained_digits[1] / "best", layer="resnet.encoder.stage.0")


@pytest.mark.parametrize(
    "model_type, kwargs, layer",
    [
        ("vit", dict(FAMILIES["vit"], num_hidden_layers=2), "vit.layers.1.layernorm_before"),
        ("swin", FAMILIES["swin"], "swin.encoder.layers.1.blocks.0.layernorm_before"),
    ],
)
def test_transformer_tokens_become_a_grid(model_type, kwargs, layer):
    model = AutoModelForImageClassification.from_config(AutoConfig.for_model(model_type, num_labels=2, **kwargs))
    assert default_layer(model) == layer
    seen = []
    model.get_submodule(layer).register_forward_hook(lambda module, args, out: seen.append(out))
    model(pixel_values=torch.randn(1, 3, 32, 32))
    grid = reshape_transform(model_type)(seen[0])
    side = 4 if model_type == "vit" else 4  # 32 / patch 8; Swin: 32 / 4 patches, merged once -> 4
    assert grid.shape == (1, seen[0].shape[-1], side, side)
    patches = seen[0][:, 1:] if model_type == "vit" else seen[0]
    assert torch.equal(grid[0, :, 0, 1], patches[0, 1])  # token 1 is row 0, column 1
    assert np.isfinite(grid.detach().numpy()).all()
