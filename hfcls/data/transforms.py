"""Transforms: recipe lists -> torchvision v2 pipelines on uint8 images.

Per-sample work (decode, geometric transforms) happens in DataLoader workers on
uint8 tensors; conversion to float and normalisation happen once per batch on
the model's device (hfcls.predict.inputs), where they are cheapest. The eval
pipeline also becomes the exported `preprocessor_config.json`, so
`transformers.pipeline` sees exactly what hfcls evaluates.
"""

from __future__ import annotations

import inspect

from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode

from hfcls.errors import HfclsError, did_you_mean
from hfcls.recipe.preprocessing import RESAMPLE

# Transforms that would break the uint8-in, uint8-out contract of the per-sample
# pipeline: hfcls adds these itself.
_ADDED_BY_HFCLS = {"ToImage", "ToDtype", "Normalize", "ToTensor", "PILToTensor", "ToPILImage"}


def _transform_classes() -> dict:
    return {
        name: obj
        for name, obj in vars(v2).items()
        if inspect.isclass(obj) and issubclass(obj, v2.Transform) and name not in _ADDED_BY_HFCLS
    }


def _interpolation(value, where):
    if isinstance(value, str):
        try:
            return InterpolationMode(value.lower())
        except ValueError:
            modes = [m.value for m in InterpolationMode]
            raise HfclsError(f"{where}: interpolation {value!r} is not one of {', '.join(modes)}") from None
    return value


def build_pipeline(specs: list, where: str = "pipeline") -> v2.Compose:
    """[{type: RandomResizedCrop, size: 224}, ...] -> v2.Compose of those transforms."""
    classes = _transform_classes()
    transforms = []
    for i, spec in enumerate(specs):
        here = f"{where}[{i}]"
        if not isinstance(spec, dict) or "type" not in spec:
            raise HfclsError(f"{here}: each transform is a mapping with a type, e.g. {{type: CenterCrop, size: 224}}")
        kwargs = dict(spec)
        name = kwargs.pop("type")
        if name in _ADDED_BY_HFCLS:
            raise HfclsError(f"{here}: leave out {name}; hfcls converts and normalises (data.mean/std) itself")
        if name not in classes:
            raise HfclsError(f"{here}: unknown transform {name!r}{did_you_mean(name, classes)}; "
                             "use a torchvision.transforms.v2 class name")
        if "interpolation" in kwargs:
            kwargs["interpolation"] = _interpolation(kwargs["interpolation"], here)
        try:
            transforms.append(classes[name](**kwargs))
        except (TypeError, ValueError) as error:
            raise HfclsError(f"{here}: {name}({_format_kwargs(kwargs)}) is invalid: {error}") from None
    return compose(transforms)


def compose(transforms: list):
    """v2.Compose of `transforms`; v2.Identity for none (the default), which v2.Compose refuses."""
    return v2.Compose(transforms) if transforms else v2.Identity()


def _format_kwargs(kwargs):
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())




def eval_pipeline_from_preprocessor(config: dict, where: str = "preprocessor_config.json"):
    """(eval pipeline specs, mean, std) equal to an exported preprocessor: the inverse of
    `hfcls.recipe.preprocessing.preprocessor_kwargs`."""
    names = {code: mode for mode, code in RESAMPLE.items()}
    resample = config.get("resample", 2)
    scaled = config.get("do_rescale", True) and abs(config.get("rescale_factor", 1 / 255) - 1 / 255) < 1e-12
    if not config.get("do_resize", True) or resample not in names or not scaled:
        raise HfclsError(f"{where}: only resize (bilinear or bicubic) + optional center crop + rescale by 1/255 "
                         "+ normalize are supported; pass the recipe instead")
    size = config["size"]
    specs = [{"type": "Resize", "size": size.get("shortest_edge") or [size["height"], size["width"]],
              "interpolation": names[resample]}]
    if config.get("do_center_crop"):
        crop = config["crop_size"]
        specs.append({"type": "CenterCrop", "size": [crop["height"], crop["width"]]})
    if config.get("do_normalize", True):
        return specs, config["image_mean"], config["image_std"]
    return specs, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
