"""The demo app's model: hfcls-demo's labels and scores for the same file (classify_images, the library side of
hfcls-demo, is the reference), many images as a table and a CSV, Grad-CAM, a multi-label threshold, an int8
graph, and a file that is not an image as a message naming it."""

import csv

import numpy as np
import pytest

from hfcls.app.model import AppModel, Upload, check_examples
from hfcls.errors import HfclsError
from hfcls.inference import classify_images


@pytest.fixture(scope="module")
def digits(trained_digits, digits_dir):
    """(the digits run's best/, the AppModel on it, one validation image of each of 3 classes)."""
    recipe, work = trained_digits
    images = [sorted((digits_dir / "val" / str(c)).glob("*.png"))[0] for c in (0, 3, 7)]
    return work / "best", AppModel(work / "best"), images


def demo_answer(image, checkpoint, **options) -> list:
    [(_, predictions)] = classify_images(str(image), checkpoint, num_workers=0, **options)
    return predictions


def test_one_image_gets_hfcls_demos_labels_and_scores(digits):
    best, model, images = digits
    for image in images:
        assert model.classify(Upload(str(image), image.name)) == demo_answer(image, best)
    assert model.describe().startswith("`resnet`, 10 classes (single-label)") and not model.multi_label


def test_a_file_that_is_not_an_image_is_named_as_the_user_named_it(digits, tmp_path):
    _, model, _ = digits
    notes = tmp_path / "x9f3"  # where the server keeps an upload
    notes.write_text("not pixels")
    with pytest.raises(HfclsError, match=r"^notes\.png is not an image hfcls can read \(.*\); upload a PNG, JPEG"):
        model.classify(Upload(str(notes), "notes.png"))
    with pytest.raises(HfclsError, match="examples: .*x9f3 is not an image .*; remove it or point --examples"):
        check_examples([str(digits[2][0]), str(notes)])


def test_many_images_give_hfcls_demos_rows_and_a_csv(digits, tmp_path):
    best, model, images = digits
    notes = tmp_path / "notes.txt"
    notes.write_text("not pixels")
    uploads = [Upload(str(p), p.name) for p in images] + [Upload(str(notes), notes.name)]
    rows, csv_file, skipped = model.classify_many(uploads)
    assert skipped == ["notes.txt"] and [row[0] for row in rows] == [p.name for p in images]
    with open(csv_file, newline="") as handle:
        table = list(csv.reader(handle))
    assert table[0][:3] == ["path", "label_1", "score_1"] and len(table) == 4
    for image, row, line in zip(images, rows, table[1:]):
        expected = demo_answer(image, best)
        assert row[1::2] == line[1::2] == [p["label"] for p in expected]
        assert [float(s) for s in line[2::2]] == pytest.approx([p["score"] for p in expected], abs=1e-6)


def test_grad_cam_overlay_is_drawn_for_a_pytorch_model(digits):
    _, model, images = digits
    assert model.cam_unavailable() is None
    picture = model.cam(Upload(str(images[1]), images[1].name))
    assert picture.shape == (256, 256, 3) and picture.dtype == np.uint8 and picture.std() > 10


def test_a_multi_label_model_shows_every_label_over_the_threshold(multilabel_run):
    recipe, work = multilabel_run
    model = AppModel(work / "best")
    image = recipe.parent / "data" / "val" / "images" / "0.png"
    assert model.multi_label and "multi-label" in model.describe()
    for threshold in (0.3, 0.7):
        shown = model.classify(Upload(str(image), "0.png"), threshold)
        assert shown == demo_answer(image, work / "best", threshold=threshold)
        assert all(p["score"] >= threshold for p in shown)
    assert len(model.classify(Upload(str(image), "0.png"), 0.0)) == 3  # every label at 0


def test_the_int8_graph_serves_as_any_artifact(digits_int8, digits):
    _, int8, _ = digits_int8
    _, _, images = digits
    model = AppModel(int8)
    assert model.classify(Upload(str(images[2]), images[2].name)) == demo_answer(images[2], int8)
    assert "an .onnx graph has none" in model.cam_unavailable()
