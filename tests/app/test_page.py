"""The demo page's wiring, without a browser: which controls it shows for a model, and what its handlers return
(the browser test, test_serve.py, drives the single-label page in Chromium)."""

import gradio as gr

from hfcls.app.model import AppModel
from hfcls.app.page import build_page
from hfcls.inference import classify_images


def handler(page, first_output):
    """The event handler writing to the page's `first_output` component (every trigger of it runs the same one)."""
    return next(f for f in page.fns.values() if isinstance(f.outputs[0], first_output))


def test_a_multi_label_page_has_a_threshold_slider_its_handlers_read(multilabel_run, tmp_path):
    recipe, work = multilabel_run
    page = build_page(AppModel(work / "best"))
    one, many = handler(page, gr.Label), handler(page, gr.Dataframe)
    assert [type(c).__name__ for c in one.inputs] == ["Image", "Slider", "Checkbox"]
    assert [type(c).__name__ for c in many.inputs] == ["File", "Slider"]
    image = recipe.parent / "data" / "val" / "images" / "0.png"
    upload = {"path": str(image), "orig_name": "0.png"}
    [(_, expected)] = classify_images(str(image), work / "best", num_workers=0, threshold=0.3)
    scores, note, cam = one.fn(upload, 0.3, False)
    assert scores == {p["label"]: p["score"] for p in expected} and note == "" and cam["visible"] is False
    assert one.fn(upload, 1.0, False)[:2] == (None, "no label scores 1.0 or more")
    notes = tmp_path / "notes.txt"
    notes.write_text("not pixels")
    table, csv, summary = many.fn([upload, {"path": str(notes), "orig_name": "notes.txt"}], 0.3)
    assert table["value"] == [["0.png", *(v for p in expected for v in (p["label"], round(p["score"], 4)))]]
    assert summary == "1 image(s) classified; skipped 1 file(s) that are not images: notes.txt"
    assert csv.endswith("predictions.csv")


def test_an_onnx_page_offers_no_grad_cam_and_says_why(digits_int8):
    _, int8, _ = digits_int8
    page = build_page(AppModel(int8))
    assert [type(c).__name__ for c in handler(page, gr.Label).inputs] == ["Image"]
    texts = [b.value for b in page.blocks.values() if isinstance(b, gr.Markdown) and b.value]
    assert any("Grad-CAM needs PyTorch weights; an .onnx graph has none" in text for text in texts)
