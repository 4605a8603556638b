"""The eval pipeline's exported form: the settings of the Hugging Face image processor
(BitImageProcessor) that reproduces it, so `transformers.pipeline` preprocesses a published model
exactly as hfcls evaluates it, and for a timm model the `pretrained_cfg` that says the same to timm
(and to transformers' TimmWrapperImageProcessor). Plain data, no torch: validation checks it when a
recipe loads.
"""

from __future__ import annotations

import math

from hfcls.errors import HfclsError, did_you_mean

# PIL resample codes, as Hugging Face image processors store them, by torchvision's interpolation
# name; only the modes whose pixels were checked to match torchvision's.
RESAMPLE = {"bilinear": 2, "bicubic": 3}


def preprocessor_kwargs(eval_specs: list, mean, std, where="data.eval_pipeline") -> dict:
    """The BitImageProcessor settings that reproduce an eval pipeline exactly.

    Supported pipelines: [Resize(R)] + optional [CenterCrop(C)]; R an int (shorter
    side) or [H, W]. Anything else cannot be expressed in a Hugging Face
    preprocessor, so exported models would predict differently: an error.
    """
    names = [spec.get("type") if isinstance(spec, dict) else spec for spec in eval_specs]
    if names not in (["Resize"], ["Resize", "CenterCrop"]):
        raise HfclsError(
            f"{where}: an eval pipeline must be [Resize] or [Resize, CenterCrop] so exported models "
            f"preprocess exactly as hfcls evaluates; got {names}"
        )
    resize = dict(eval_specs[0])
    unsupported = set(resize) - {"type", "size", "interpolation", "antialias"}
    if unsupported or resize.get("antialias", True) is not True:
        raise HfclsError(f"{where}[0]: Resize supports size and interpolation only here, got {sorted(unsupported)}")
    kwargs = {
        "size": _size_dict(resize.get("size"), "shortest_edge", f"{where}[0].size"),
        "resample": RESAMPLE[_interpolation(resize.get("interpolation", "bilinear"), f"{where}[0]")],
        "image_mean": list(mean),
        "image_std": list(std),
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "do_convert_rgb": True,
        "do_center_crop": len(eval_specs) == 2,
    }
    if len(eval_specs) == 2:
        kwargs["crop_size"] = _size_dict(eval_specs[1].get("size"), None, f"{where}[1].size")
    return kwargs


def _interpolation(value, where: str) -> str:
    mode = value.lower() if isinstance(value, str) else value
    if mode not in RESAMPLE:
        raise HfclsError(
            f"{where}: eval Resize interpolation must be bilinear or bicubic, got {value}{did_you_mean(mode, RESAMPLE)}"
        )
    return mode


def _size_dict(size, int_key, where):
    if isinstance(size, int) or (isinstance(size, list) and len(size) == 1):
        side = size if isinstance(size, int) else size[0]
        return {int_key: side} if int_key else {"height": side, "width": side}
    if isinstance(size, list) and len(size) == 2:
        return {"height": size[0], "width": size[1]}
    raise HfclsError(f"{where}: expected an int or [height, width], got {size!r}")


INTERPOLATION = {code: name for name, code in RESAMPLE.items()}


def timm_data_config(kwargs: dict, where="data.eval_pipeline") -> dict:
    """The `pretrained_cfg` fields (input_size, interpolation, mean, std, crop_pct, crop_mode) from
    which timm's eval transform (and transformers' TimmWrapperImageProcessor, which builds it)
    reproduces the preprocessing of the BitImageProcessor settings `kwargs`.

    timm resizes to floor(side / crop_pct) and center-crops to input_size: [Resize(R), CenterCrop(C)]
    is crop_mode center with floor(C / crop_pct) = R, and Resize([H, W]) is crop_mode squash with
    crop_pct 1. A shorter-side Resize without a crop keeps each image's aspect ratio, which timm's
    fixed input size cannot: an error.
    """
    size = kwargs["size"]
    crop = kwargs.get("crop_size") if kwargs.get("do_center_crop") else None
    if crop is None and "shortest_edge" in size:
        raise HfclsError(
            f"{where}: a timm model's exported preprocessing (config.json pretrained_cfg) ends at one fixed "
            f"input size, which Resize({size['shortest_edge']}) alone does not give; add a CenterCrop "
            f"({size['shortest_edge']} keeps all of a square image), or Resize to [height, width]"
        )
    crop = crop or {"height": size["height"], "width": size["width"]}
    mode = "center" if "shortest_edge" in size else "squash"
    scaled = (size["shortest_edge"],) * 2 if mode == "center" else (size["height"], size["width"])
    crop_pct = _crop_pct((crop["height"], crop["width"]), scaled)
    if crop_pct is None:
        raise HfclsError(
            f"{where}: timm's eval transform cannot resize to {scaled[0]} x {scaled[1]} and crop "
            f"{crop['height']} x {crop['width']} (it scales both sides by one crop_pct); for a timm model "
            "use a square CenterCrop with a shorter-side Resize, or Resize to [height, width] alone"
        )
    return {
        "input_size": [3, crop["height"], crop["width"]],
        "interpolation": INTERPOLATION[kwargs["resample"]],
        "mean": list(kwargs["image_mean"]),
        "std": list(kwargs["image_std"]),
        "crop_pct": crop_pct,
        "crop_mode": mode,
    }


def _crop_pct(crop: tuple, scaled: tuple) -> float | None:
    """A crop_pct with floor(crop side / crop_pct) = scaled side for both sides, or None. The plain
    ratio can land a hair off in floating point, so its neighbours are tried too."""
    ratio = crop[0] / scaled[0]
    for pct in (ratio, math.nextafter(ratio, 0.0), math.nextafter(ratio, math.inf)):
        if all(math.floor(c / pct) == s for c, s in zip(crop, scaled)):
            return pct
    return None
