"""Transforms: recipe lists -> torchvision v2 pipelines on uint8 images.

Per-sample work (decode, geometric transforms) happens in DataLoader workers on
uint8 tensors; conversion to float and normalisation happen once per batch on
the model's device (hfcls.predict.inputs), where they are cheapest. The eval
pipeline also becomes the exported `preprocessor_config.json`, so
`transformers.pipeline` sees exactly what hfcls evaluates.
"""

from __future__ import annotations

import inspect
import math

from torchvision.transforms import v2
from torchvision.transforms.v2 import InterpolationMode

from hfcls.data.decode import compose
from hfcls.errors import HfclsError, did_you_mean
from hfcls.recipe.preprocessing import RESAMPLE
from hfcls.recipe.schema import MAX_IMAGE_PIXELS

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
            raise HfclsError(
                f"{here}: unknown transform {name!r}{did_you_mean(name, classes)}; "
                "use a torchvision.transforms.v2 class name"
            )
        if "interpolation" in kwargs:
            kwargs["interpolation"] = _interpolation(kwargs["interpolation"], here)
        try:
            transforms.append(classes[name](**kwargs))
        except (TypeError, ValueError) as error:
            raise HfclsError(f"{here}: {name}({_format_kwargs(kwargs)}) is invalid: {error}") from None
    return compose(transforms)


def _format_kwargs(kwargs):
    return ", ".join(f"{k}={v!r}" for k, v in kwargs.items())


def eval_pipeline_from_preprocessor(
    config: dict, where: str = "preprocessor_config.json", max_pixels: int = MAX_IMAGE_PIXELS
):
    """(eval pipeline specs, mean, std) equal to an exported preprocessor: the inverse of
    `hfcls.recipe.preprocessing.preprocessor_kwargs`. Every size and statistic it declares is
    checked first: a resize to more than `max_pixels` pixels (data.max_image_pixels) is refused, as
    an image that large is, before anything is allocated."""
    names = {code: mode for mode, code in RESAMPLE.items()}
    resample = config.get("resample", 2)
    scaled = config.get("do_rescale", True) and abs(config.get("rescale_factor", 1 / 255) - 1 / 255) < 1e-12
    if not config.get("do_resize", True) or resample not in names or not scaled:
        raise HfclsError(
            f"{where}: only resize (bilinear or bicubic) + optional center crop + rescale by 1/255 "
            "+ normalize are supported; pass the recipe instead"
        )
    size = _declared_size(config.get("size"), "size", where, max_pixels)
    specs = [{"type": "Resize", "size": size[0] if len(size) == 1 else size, "interpolation": names[resample]}]
    if config.get("do_center_crop"):
        specs.append(
            {
                "type": "CenterCrop",
                "size": _declared_size(config.get("crop_size"), "crop_size", where, max_pixels, shortest=False),
            }
        )
    if config.get("do_normalize", True):
        return specs, _statistics(config, "image_mean", where), _statistics(config, "image_std", where)
    return specs, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]


def _declared_size(size, key: str, where: str, max_pixels: int, shortest: bool = True) -> list:
    """[shortest edge] or [height, width] of a preprocessor's `size` or `crop_size`, checked."""
    fields = (
        ("shortest_edge",) if shortest and isinstance(size, dict) and "shortest_edge" in size else ("height", "width")
    )
    sides = [size.get(field) for field in fields] if isinstance(size, dict) else []
    if not sides or not all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in sides):
        raise HfclsError(
            f"{where}: {key} {size!r} is not a size (positive whole numbers: "
            f"{' or '.join(fields)}); the file is damaged: export it again"
        )
    pixels = sides[0] * sides[-1]
    if pixels > max_pixels:
        raise HfclsError(
            f"{where}: {key} {' x '.join(map(str, sides))} resizes every image to at least "
            f"{pixels:,} pixels, more than data.max_image_pixels ({max_pixels:,}); the file is "
            "damaged or not meant for hfcls: export it again"
        )
    return sides


def _statistics(config: dict, key: str, where: str) -> list:
    """image_mean or image_std: 1 or 3 finite numbers (a std above 0)."""
    values = config.get(key)
    if not (
        isinstance(values, (list, tuple))
        and len(values) in (1, 3)
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
        and (key != "image_std" or all(v > 0 for v in values))
    ):
        raise HfclsError(
            f"{where}: {key} {values!r} is not 1 or 3 finite numbers"
            f"{' above 0' if key == 'image_std' else ''}; the file is damaged: export it again"
        )
    return list(values)
