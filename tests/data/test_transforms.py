"""Transform lists and the exported preprocessor's fidelity, both ways."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from hfcls.artifacts.export import image_processor
from hfcls.data.decode import decode
from hfcls.data.transforms import build_pipeline, eval_pipeline_from_preprocessor
from hfcls.errors import HfclsError
from hfcls.predict.inputs import Normalize
from hfcls.recipe.preprocessing import preprocessor_kwargs
from hfcls.recipe.schema import DataSection


def test_pipeline_builds_v2_transforms_with_named_interpolation():
    pipeline = build_pipeline(
        [
            {"type": "RandomResizedCrop", "size": 8, "scale": [0.5, 1.0], "interpolation": "bicubic"},
            {"type": "RandomHorizontalFlip", "p": 1.0},
        ]
    )
    crop, flip = pipeline.transforms
    assert isinstance(crop, v2.RandomResizedCrop) and crop.size == (8, 8)
    assert crop.interpolation == v2.InterpolationMode.BICUBIC
    assert isinstance(flip, v2.RandomHorizontalFlip) and flip.p == 1.0
    out = pipeline(torch.zeros(3, 20, 30, dtype=torch.uint8))
    assert out.shape == (3, 8, 8) and out.dtype == torch.uint8


@pytest.mark.parametrize(
    "specs, message",
    [
        (
            [{"type": "RandomResizedCop", "size": 8}],
            "unknown transform 'RandomResizedCop' (did you mean \"RandomResizedCrop\"?)",
        ),
        ([{"type": "Normalize", "mean": [0], "std": [1]}], "leave out Normalize"),
        ([{"type": "CenterCrop", "sise": 8}], "CenterCrop(sise=8) is invalid"),
        ([{"size": 8}], "each transform is a mapping with a type"),
        ([{"type": "Resize", "size": 8, "interpolation": "bilinearr"}], "interpolation 'bilinearr' is not one of"),
    ],
)
def test_bad_transform_lists_are_errors(specs, message):
    with pytest.raises(HfclsError) as error:
        build_pipeline(specs, "data.train_pipeline")
    assert message in str(error.value) and "data.train_pipeline[0]" in str(error.value)


@pytest.mark.parametrize(
    "eval_pipeline",
    [
        [{"type": "Resize", "size": 20}, {"type": "CenterCrop", "size": 16}],
        [{"type": "Resize", "size": 18, "interpolation": "bicubic"}, {"type": "CenterCrop", "size": [16, 12]}],
        [{"type": "Resize", "size": [16, 16]}],
    ],
)
def test_exported_preprocessor_reproduces_the_eval_pipeline(tmp_path, eval_pipeline):
    """transformers' image processor must see exactly the pixels hfcls evaluates."""
    data = DataSection(eval_pipeline=eval_pipeline, mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])
    processor = image_processor(data)
    hfcls_path = build_pipeline(eval_pipeline)
    normalize = Normalize(data.mean, data.std)
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(37, 23), (24, 40), (8, 8)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        ours = normalize(hfcls_path(decode({"path": str(path)}, to_rgb=True))[None])
        with Image.open(path) as pil:
            theirs = processor(pil, return_tensors="pt")["pixel_values"]
        assert ours.shape == theirs.shape
        assert (ours - theirs).abs().max().item() < 1e-5


@pytest.mark.parametrize(
    "eval_pipeline, message",
    [
        ([{"type": "CenterCrop", "size": 16}], "must be [Resize] or [Resize, CenterCrop]"),
        ([{"type": "Resize", "size": 16, "interpolation": "nearest"}], "must be bilinear or bicubic"),
        ([{"type": "Resize", "size": 16, "max_size": 20}], "supports size and interpolation only"),
    ],
)
def test_eval_pipelines_a_preprocessor_cannot_express_are_errors(eval_pipeline, message):
    with pytest.raises(HfclsError) as error:
        preprocessor_kwargs(eval_pipeline, [0.5] * 3, [0.5] * 3)
    assert message in str(error.value)


def test_preprocessing_is_read_back_from_the_export(trained_digits):
    config = json.loads((trained_digits[1] / "best" / "preprocessor_config.json").read_text())
    specs, mean, std = eval_pipeline_from_preprocessor(config)
    assert specs == [{"type": "Resize", "size": 16, "interpolation": "bilinear"}]
    assert (mean, std) == ([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])


@pytest.mark.parametrize(
    "eval_pipeline",
    [
        [{"type": "Resize", "size": 20, "interpolation": "bicubic"}, {"type": "CenterCrop", "size": [16, 12]}],
        [{"type": "Resize", "size": [16, 14]}],
    ],
)
def test_preprocessor_and_eval_pipeline_convert_both_ways(eval_pipeline):
    data = DataSection(eval_pipeline=eval_pipeline, mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])
    specs, mean, std = eval_pipeline_from_preprocessor(image_processor(data).to_dict())
    assert (list(mean), list(std)) == (data.mean, data.std)
    assert preprocessor_kwargs(specs, mean, std) == preprocessor_kwargs(eval_pipeline, data.mean, data.std)


def test_a_preprocessor_that_is_no_eval_pipeline_is_an_error():
    config = image_processor(DataSection(eval_pipeline=[{"type": "Resize", "size": 8}])).to_dict()
    with pytest.raises(HfclsError, match="x.json: only resize .*; pass the recipe instead"):
        eval_pipeline_from_preprocessor({**config, "resample": 0}, "x.json")  # nearest
