"""What an artifact says about itself, checked before use: the training record best/ and latest/ carry (and
published folders copy), a preprocessor's sizes."""

import json
import shutil

import pytest

from hfcls.artifacts.describe import training_record
from hfcls.artifacts.publish import publish
from hfcls.errors import HfclsError
from hfcls.predict.inputs import exported_inputs


def test_each_export_records_its_own_epoch_step_and_metrics(two_epoch_run, tmp_path):
    rows = [json.loads(line) for line in (two_epoch_run / "metrics.jsonl").read_text().splitlines()]
    latest = training_record(two_epoch_run / "latest")
    assert latest == {
        "epoch": 2,
        "step": rows[1]["step"],
        "metrics": {key.removeprefix("val_"): value for key, value in rows[1].items() if key.startswith("val_")},
    }
    best = training_record(two_epoch_run / "best")
    assert best == training_record(two_epoch_run / "checkpoints" / f"epoch_{best['epoch']}")  # the same weights
    published = publish(two_epoch_run / "best", tmp_path / "release" / "tiny")
    assert training_record(published.with_suffix("")) == best
    assert training_record(published) is None  # the hashed file's bytes are the weights' alone


@pytest.mark.parametrize(
    "content", ['{"epoch": 2, "step": 6', '{"epoch": -1, "step": 6, "metrics": {}}', '{"epoch": 2, "step": 6}']
)
def test_a_damaged_record_is_one_line(two_epoch_run, tmp_path, content):
    folder = shutil.copytree(two_epoch_run / "best", tmp_path / "best")
    (folder / "training_record.json").write_text(content)
    with pytest.raises(HfclsError, match=r"training_record.json .*the export is damaged: export it again"):
        training_record(folder)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"size": {"height": 60000, "width": 70000}}, "size 60000 x 70000 resizes every image to at least 4,200"),
        ({"size": {"shortest_edge": "16"}}, "size {'shortest_edge': '16'} is not a size"),
        ({"do_center_crop": True, "crop_size": {"height": 0, "width": 8}}, "crop_size .* is not a size"),
        ({"image_std": [0.5, 0.0, 0.5]}, r"image_std \[0.5, 0.0, 0.5\] is not 1 or 3 finite numbers above 0"),
    ],
)
def test_a_preprocessor_declaring_what_cannot_be_right_is_refused(two_epoch_run, change, message):
    config = json.loads((two_epoch_run / "best" / "preprocessor_config.json").read_text())
    with pytest.raises(HfclsError, match=f"^best: {message}"):
        exported_inputs({**config, **change}, "best")
    exported_inputs(config, "best")
