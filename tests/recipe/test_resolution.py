"""Progressive resizing and evaluation at another size: the recipe keys finished once, the side of each
epoch, and the eval pipeline (so the exported preprocessing) at data.eval_size."""

import re

import pytest

from hfcls.artifacts.export import image_processor
from hfcls.errors import HfclsError
from hfcls.recipe.load import recipe_from_dict
from hfcls.recipe.resolution import eval_pipeline_at, train_side

from conftest import tiny_recipe_dict

SCHEDULE = [[0, 12], [2, 14], [3, 16]]


def recipe(data: dict):
    return recipe_from_dict(tiny_recipe_dict("train", "val", data=data))


def test_each_epoch_trains_at_the_side_of_the_last_entry_it_has_reached():
    data = recipe({"progressive_resizing": SCHEDULE}).data
    assert [train_side(data.progressive_resizing, epoch) for epoch in range(5)] == [12, 12, 14, 16, 16]
    assert train_side(None, 3) is None  # the pipeline's own side


@pytest.mark.parametrize(
    "data, message",
    [
        ({"progressive_resizing": [[1, 12], [2, 16]]}, "must start at epoch 0 with its epochs rising"),
        ({"progressive_resizing": [[0, 12], [0, 16]]}, "must start at epoch 0 with its epochs rising"),
        ({"progressive_resizing": [[0, 12.5]]}, "list of [first epoch, side] pairs of whole numbers"),
        ({"progressive_resizing": [160]}, "list of [first epoch, side] pairs"),
        ({"progressive_resizing": []}, "list of [first epoch, side] pairs"),
        ({"progressive_resizing": [[0, 4]]}, "side 4 is below 8 px"),
        (
            {"progressive_resizing": SCHEDULE, "train_pipeline": [{"type": "Resize", "size": 16}]},
            "starts with Resize: put a RandomResizedCrop first",
        ),
        ({"progressive_resizing": SCHEDULE, "in_memory": True}, "set data.in_memory=false and data.decode=workers"),
        ({"progressive_resizing": SCHEDULE, "decode": "cpu"}, "set data.in_memory=false and data.decode=workers"),
        ({"eval_size": 20, "eval_pipeline": [{"type": "Resize", "size": [16, 12]}]}, "scales an eval pipeline of"),
        ({"eval_size": 4}, "must be at least 8, got 4"),
    ],
)
def test_resolution_keys_are_refused_by_name_with_the_fix(data, message):
    with pytest.raises(HfclsError, match=rf"data\.(progressive_resizing|eval_size)\b.*{re.escape(message)}"):
        recipe(data)


def test_eval_size_scales_resize_and_crop_alike_and_the_export_follows():
    data = recipe(
        {"eval_size": 24, "eval_pipeline": [{"type": "Resize", "size": 18}, {"type": "CenterCrop", "size": [16, 16]}]}
    ).data
    assert data.eval_pipeline == [{"type": "Resize", "size": 27}, {"type": "CenterCrop", "size": [24, 24]}]
    processor = image_processor(data)  # what latest/ and best/ hold
    assert processor.size == {"shortest_edge": 27} and processor.crop_size == {"height": 24, "width": 24}
    # Validating the finished pipeline again (a run's saved recipe.yaml) changes nothing.
    assert eval_pipeline_at(data.eval_pipeline, 24, "recipe") == data.eval_pipeline
    assert eval_pipeline_at(data.eval_pipeline, None, "recipe") is data.eval_pipeline
