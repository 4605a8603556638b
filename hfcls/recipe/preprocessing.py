"""The eval pipeline's exported form: the settings of the Hugging Face image processor
(BitImageProcessor) that reproduces it, so `transformers.pipeline` preprocesses a published model
exactly as hfcls evaluates it. Plain data, no torch: validation checks it when a recipe loads.
"""

from __future__ import annotations

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
