"""Test-time augmentation: the views of each image whose class scores a prediction averages.

    flip    the image and its mirror image (2 views)
    crops   the image and its four corner and centre crops of 7/8 the side, each resized back (6 views)
    flip,crops  every crop and its mirror image (12 views)

Views are made from the normalised batch: flips, crops and bilinear resizing commute with the
per-channel normalisation, so this equals augmenting the uint8 images first. The average is taken
in the model's own output space, the class scores (softmax, or a multi-label model's sigmoids):
hfcls.predict.forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hfcls.errors import HfclsError, did_you_mean

VIEWS = ("flip", "crops")
CROP_FRACTION = 0.875  # the share of the side a crop keeps, as a 224 crop of a 256 image


def parse_tta(spec) -> tuple:
    """ "flip", "flip,crops" or a list of those names -> a tuple of view names; None or "" -> ()."""
    if not spec:
        return ()
    names = [name.strip() for name in (spec.split(",") if isinstance(spec, str) else spec)]
    for name in names:
        if name not in VIEWS:
            raise HfclsError(
                f"tta: unknown view {name!r}{did_you_mean(name, VIEWS)}; choose from "
                f"{', '.join(VIEWS)} (comma-separated, e.g. flip,crops)",
                param="tta",
            )
    return tuple(view for view in VIEWS if view in names)


def views(pixels: torch.Tensor, tta: tuple) -> list:
    """The batch as each view sees it, all of the input's size; the batch itself first."""
    crops = [pixels, *five_crops(pixels)] if "crops" in tta else [pixels]
    return [*crops, *(crop.flip(-1) for crop in crops)] if "flip" in tta else crops


def five_crops(pixels: torch.Tensor) -> list:
    height, width = pixels.shape[-2:]
    h, w = max(1, round(height * CROP_FRACTION)), max(1, round(width * CROP_FRACTION))
    corners = [(0, 0), (0, width - w), (height - h, 0), (height - h, width - w), ((height - h) // 2, (width - w) // 2)]
    return [
        F.interpolate(
            pixels[..., top : top + h, left : left + w], size=(height, width), mode="bilinear", align_corners=False
        )
        for top, left in corners
    ]
