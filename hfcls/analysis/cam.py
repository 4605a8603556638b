"""Class activation maps (the library side of hfcls-cam), with pytorch-grad-cam.

The map shows which parts of the image raised the score of a class. It is computed on the
image as the model sees it (the artifact's eval resize and crop) at a target layer: by default
the last feature map of the network (DEFAULT_LAYERS; for a timm model the last entry of its
feature_info). Transformers' layers hold tokens, not feature maps; `reshape_transform` lays their
patch tokens out on the image grid (dropping the [CLS] token of ViT, and DeiT's distillation token
too) as pytorch-grad-cam's ViT and Swin examples do; timm's Swin gives NHWC maps, made NCHW.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hfcls.analysis.figures import pyplot, save_figure
from hfcls.artifacts.describe import preprocessor, run_recipe
from hfcls.artifacts.loading import load_model
from hfcls.data.images import to_uint8_tensor
from hfcls.errors import HfclsError, did_you_mean
from hfcls.extras import optional_import
from hfcls.labels import class_names_of, problem_type_of_model
from hfcls.models import LogitsOnly
from hfcls.predict.forward import forward_batch
from hfcls.predict.inputs import exported_inputs
from hfcls.timm_models import channels_last_output, feature_layer, is_timm, prefix_tokens

METHODS = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "scorecam": "ScoreCAM", "eigencam": "EigenCAM"}

# model_type -> (a module list whose last entry is the layer, what follows inside that entry).
DEFAULT_LAYERS = {
    "resnet": ("resnet.encoder.stages", ""),
    "regnet": ("regnet.encoder.stages", ""),
    "convnext": ("convnext.encoder.stages", ""),
    "mobilenet_v2": (None, "mobilenet_v2.conv_1x1"),
    "efficientnet": (None, "efficientnet.encoder.top_activation"),
    "vit": ("vit.layers", ".layernorm_before"),
    "deit": ("deit.layers", ".layernorm_before"),
    "swin": ("swin.encoder.layers", ".blocks"),  # then that stage's last block, below
    "cifar_resnet": ("stages", ""),
    "lenet5": (None, "features.4"),  # the second convolution's tanh: 10 x 10 on a 32 x 32 image
}
EXTRA_TOKENS = {"vit": 1, "deit": 2}  # [CLS] (and DeiT's distillation token) before the patches


@dataclass
class CamResult:
    heatmap: np.ndarray  # H x W in [0, 1], the size of `image`
    image: np.ndarray  # H x W x 3 uint8: the image as the model saw it
    target: int  # the class the map explains
    label: str
    score: float  # its score: the softmax, or a multi-label model's sigmoid
    layer: str
    method: str


def default_layer(model) -> str:
    model_type = model.config.model_type
    if is_timm(model):
        return feature_layer(model)
    if model_type not in DEFAULT_LAYERS:
        raise HfclsError(
            f"hfcls-cam has no default layer for {model_type}; pass --layer NAME (a module name from print(model))"
        )
    listed, rest = DEFAULT_LAYERS[model_type]
    if listed is None:
        return rest
    name = f"{listed}.{len(model.get_submodule(listed)) - 1}{rest}"
    if model_type == "swin":
        name = f"{name}.{len(model.get_submodule(name)) - 1}.layernorm_before"
    return name


def find_layer(model, name: str):
    names = [n for n, _ in model.named_modules() if n]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        hint = f"; close names: {', '.join(close)}" if close else f"; names look like {', '.join(names[:3])}, ..."
        raise HfclsError(f"layer {name}: {model.config.model_type} has no module of that name{hint}", param="layer")
    return model.get_submodule(name)


def reshape_transform(model_type: str):
    """Tokens (B, N, C) -> a feature map (B, C, h, w) for transformer layers; None for CNNs."""
    if model_type not in ("vit", "deit", "swin"):
        return None
    return tokens_to_grid(EXTRA_TOKENS.get(model_type, 0))


def model_reshape_transform(model):
    """`reshape_transform` for a model: a timm model says itself what its layers give."""
    if not is_timm(model):
        return reshape_transform(model.config.model_type)
    if channels_last_output(model):
        return lambda maps: maps.permute(0, 3, 1, 2)
    return tokens_to_grid(prefix_tokens(model))


def tokens_to_grid(extra: int):
    """(B, extra + h * w, C) tokens -> (B, C, h, w), the `extra` leading tokens dropped; maps pass as they are."""

    def to_grid(tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() == 4:  # already a map
            return tokens
        patches = tokens[:, extra:, :]
        side = math.isqrt(patches.shape[1])
        return patches.reshape(patches.shape[0], side, side, patches.shape[2]).permute(0, 3, 1, 2)

    return to_grid


def class_activation_map(
    image,
    checkpoint,
    *,
    method: str = "gradcam",
    target_class=None,
    layer: str | None = None,
    recipe=None,
    use_ema: bool | None = None,
) -> CamResult:
    """The CAM of `image` (a path, PIL image or array) for `target_class` (an index or a class
    name; default the predicted class) at `layer` (default DEFAULT_LAYERS)."""
    optional_import("pytorch_grad_cam", "explain", "hfcls-cam")
    check_method(method)
    recipe = recipe if recipe is not None else run_recipe(checkpoint)
    model = load_model(checkpoint, use_ema=use_ema, recipe=recipe).float()
    transform, inputs = exported_inputs(preprocessor(checkpoint, recipe).to_dict(), str(checkpoint))
    try:
        pixels = transform(to_uint8_tensor(image))
    except (OSError, ValueError) as error:
        raise HfclsError(f"cannot read image {image} ({error})") from None
    return activation_map(model, pixels, inputs, method=method, target_class=target_class, layer=layer)


def check_method(method: str) -> None:
    if method not in METHODS:
        raise HfclsError(
            f"method {method}{did_you_mean(method, METHODS)}: choose from {', '.join(METHODS)}", param="method"
        )


def activation_map(
    model, pixels: torch.Tensor, inputs, *, method: str = "gradcam", target_class=None, layer: str | None = None
) -> CamResult:
    """The CAM of a loaded PyTorch `model` for one uint8 image after its eval transform (`pixels`, C x H x W),
    `inputs` the adapter that normalises it (hfcls.predict.inputs); the demo app keeps one model for every image."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    names = class_names_of(model)
    with torch.no_grad():
        scores = forward_batch(model, pixels[None], inputs, problem_type_of_model(model)).scores[0]
    target = _target_index(target_class, names, int(scores.argmax()))
    layer = layer or default_layer(model)
    cam_class = getattr(pytorch_grad_cam, METHODS[method])
    with cam_class(
        model=LogitsOnly(model),
        target_layers=[find_layer(model, layer)],
        reshape_transform=model_reshape_transform(model),
    ) as cam:
        heatmap = cam(input_tensor=inputs(pixels[None]), targets=[ClassifierOutputTarget(target)])[0]
    return CamResult(
        np.nan_to_num(heatmap),
        pixels.permute(1, 2, 0).numpy(),
        target,
        names[target],
        float(scores[target]),
        layer,
        method,
    )


def _target_index(target_class, names: list, predicted: int) -> int:
    if target_class is None:
        return predicted
    if str(target_class) in names:
        return names.index(str(target_class))
    if str(target_class).lstrip("-").isdigit() and 0 <= int(target_class) < len(names):
        return int(target_class)
    raise HfclsError(
        f"target_class {target_class}: not a class of the model{did_you_mean(target_class, names)}; "
        f"pass a class name or an index from 0 to {len(names) - 1}",
        param="target_class",
    )


def overlay(result: CamResult) -> np.ndarray:
    """The heat map over the image as the model saw it (H x W x 3 uint8), as pytorch-grad-cam draws it."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    return show_cam_on_image(result.image.astype(np.float32) / 255, result.heatmap, use_rgb=True)


def save_overlay(result: CamResult, out) -> Path:
    """The image and the heat map over it, side by side, titled with the class and its score."""
    fig, axes = pyplot().subplots(1, 2, figsize=(6, 3.4))
    pictures = (result.image, overlay(result))
    for ax, picture, title in zip(axes, pictures, ("input", f"{result.method} @ {result.layer}")):
        ax.imshow(picture, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"class {result.label}: score {result.score:.3f}", fontsize=10)
    return save_figure(fig, out)
