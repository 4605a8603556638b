"""The eval pipeline's exported form, read without torch: what a preprocessor can express and what it cannot."""

import pytest

from hfcls.errors import HfclsError
from hfcls.recipe.preprocessing import preprocessor_kwargs, timm_data_config


def test_resize_and_crop_become_the_processor_settings():
    kwargs = preprocessor_kwargs(
        [{"type": "Resize", "size": 20, "interpolation": "BICUBIC"}, {"type": "CenterCrop", "size": [16, 12]}],
        [0.5] * 3,
        [0.25] * 3,
    )
    assert kwargs["size"] == {"shortest_edge": 20} and kwargs["resample"] == 3
    assert kwargs["do_center_crop"] and kwargs["crop_size"] == {"height": 16, "width": 12}


@pytest.mark.parametrize(
    "specs, message",
    [
        (
            [{"type": "Resize", "size": 8, "interpolation": "bilinearr"}],
            'interpolation must be bilinear or bicubic, got bilinearr (did you mean "bilinear"?)',
        ),
        ([{"type": "Resize", "size": 8, "interpolation": 2}], "interpolation must be bilinear or bicubic, got 2"),
        ([{"type": "Resize"}], "x[0].size: expected an int or [height, width], got None"),
        (
            [3],
            "must be [Resize] or [Resize, CenterCrop] so exported models preprocess exactly as hfcls evaluates; got [3]",
        ),
    ],
)
def test_what_no_processor_expresses_is_named(specs, message):
    with pytest.raises(HfclsError) as error:
        preprocessor_kwargs(specs, [0.5] * 3, [0.5] * 3, "x")
    assert message in str(error.value)


# ----------------------------------------------------------------------------- a timm model's pretrained_cfg

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


@pytest.mark.parametrize(
    "specs",
    [
        [{"type": "Resize", "size": 36}, {"type": "CenterCrop", "size": 32}],
        [{"type": "Resize", "size": 256, "interpolation": "bicubic"}, {"type": "CenterCrop", "size": 224}],
        [{"type": "Resize", "size": 37}, {"type": "CenterCrop", "size": 33}],  # 33 / 37 lands a hair off
        [{"type": "Resize", "size": 30}, {"type": "CenterCrop", "size": 32}],  # a crop larger than the image pads
        [{"type": "Resize", "size": [24, 40]}],  # squash
    ],
    ids=["36-32", "256-224", "37-33", "30-32", "squash"],
)
def test_timms_eval_transform_of_the_pretrained_cfg_is_the_eval_pipeline(specs):
    """The oracle is timm itself: the transform timm builds from the pretrained_cfg (as transformers'
    TimmWrapperImageProcessor does) resizes and crops a noise image as hfcls's eval pipeline: the same
    pixels, up to the rounding of torchvision's float and uint8 resize kernels (mostly 0 or 1 level;
    bicubic overshoots clip apart); a pixel of shift or of scale would differ by ~80 levels on noise."""
    torch = pytest.importorskip("torch")
    timm_data = pytest.importorskip("timm.data")
    from hfcls.data.transforms import build_pipeline

    cfg = timm_data_config(preprocessor_kwargs(specs, MEAN, STD))
    timm_eval = timm_data.create_transform(**timm_data.resolve_data_config(pretrained_cfg=cfg), is_training=False)
    resize, crop, _, normalize = timm_eval.transforms
    assert normalize.mean.tolist() == pytest.approx(MEAN) and normalize.std.tolist() == pytest.approx(STD)
    ours = build_pipeline(specs, "eval")
    for height, width in [(50, 70), (90, 41), (8, 8)]:
        image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        theirs, expected = crop(resize(image)).int(), ours(image).int()
        assert theirs.shape == expected.shape and (theirs - expected).abs().float().mean() < 0.5


@pytest.mark.parametrize(
    "specs, message",
    [
        ([{"type": "Resize", "size": 32}], "ends at one fixed input size, which Resize(32) alone does not give"),
        (
            [{"type": "Resize", "size": 36}, {"type": "CenterCrop", "size": [32, 24]}],
            "cannot resize to 36 x 36 and crop 32 x 24",
        ),
    ],
)
def test_what_timm_cannot_express_is_refused(specs, message):
    with pytest.raises(HfclsError) as error:
        timm_data_config(preprocessor_kwargs(specs, MEAN, STD))
    assert message in str(error.value)
