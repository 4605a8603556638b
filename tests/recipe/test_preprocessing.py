"""The eval pipeline's exported form, read without torch: what a preprocessor can express and what it cannot."""

import pytest

from hfcls.errors import HfclsError
from hfcls.recipe.preprocessing import preprocessor_kwargs


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
