"""The demo page: a Gradio Blocks app over one AppModel.

One image (uploaded, dropped, pasted or picked from the examples) shows its top-k labels with their
scores, or for a multi-label model every label at or above a threshold slider, and on request the
Grad-CAM overlay. Many images at once give a table and a CSV to download. A file that is not an image
is a message on the page, never an error of the server.

Handlers take the uploads as Gradio sends them (`preprocess=False`): a file's path on the server and the
name the user gave it. Gradio's own image decoding would stop a file that is not an image before the
handler could name it, and could convert the pixels before hfcls decodes them as hfcls-demo does.
"""

from __future__ import annotations

import gradio as gr

from hfcls.app.model import AppModel, Upload
from hfcls.errors import HfclsError

# Small images (the 8 x 8 digits) drawn to the box's size, their pixels kept sharp. In the page itself, not in
# launch(css=...): a Space's app.py launches the page without hfcls's arguments.
STYLE = "#image img, #cam img {width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated}"


def build_page(model: AppModel, examples: list | None = None, title: str | None = None) -> gr.Blocks:
    """The Blocks app; `examples`: image files offered under the upload."""
    title = title or f"hfcls: {model.artifact.path.name}"
    cam_note = model.cam_unavailable()
    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.HTML(f"<style>{STYLE}</style>", padding=False)
        gr.Markdown(f"# {title}\n{model.describe()}" + (f"\n\n{cam_note}." if cam_note else ""))
        threshold = None
        if model.multi_label:
            threshold = gr.Slider(0, 1, value=model.threshold, step=0.01, label="threshold", elem_id="threshold")
        with gr.Tab("One image"):
            with gr.Row():
                with gr.Column():
                    image = gr.Image(
                        type="filepath",
                        image_mode=None,
                        sources=["upload", "clipboard"],
                        height=256,
                        label="image",
                        elem_id="image",
                    )
                    want_cam = None if cam_note else gr.Checkbox(label="Grad-CAM overlay", elem_id="want-cam")
                with gr.Column():
                    prediction = gr.Label(
                        num_top_classes=len(model.class_names), label="prediction", elem_id="prediction"
                    )
                    message = gr.Markdown(elem_id="message")
                    cam = gr.Image(label="Grad-CAM", visible=False, interactive=False, elem_id="cam")
            if examples:
                gr.Examples(examples, inputs=image, label="examples")
        with gr.Tab("Many images"):
            files = gr.File(file_count="multiple", label="images", elem_id="batch")
            summary = gr.Markdown(elem_id="batch-message")
            table = gr.Dataframe(label="predictions", interactive=False, elem_id="table")
            csv = gr.File(label="predictions.csv", interactive=False, elem_id="csv")
        # The slider answers when let go (release), not at every step of a drag.
        moved = [threshold.release] if threshold is not None else []
        one = [c for c in (image, threshold, want_cam) if c is not None]
        handler = one_image(model, threshold is not None, want_cam is not None)
        for trigger in [image.change, *moved, *([want_cam.change] if want_cam is not None else [])]:
            trigger(handler, one, [prediction, message, cam], preprocess=False)
        many = [c for c in (files, threshold) if c is not None]
        for trigger in [files.change, *moved]:
            trigger(many_images(model, threshold is not None), many, [table, csv, summary], preprocess=False)
    return page


def one_image(model: AppModel, has_threshold: bool, has_cam: bool):
    """The handler of the one-image tab: (label scores, message, Grad-CAM image update)."""

    def handle(payload, *rest):
        threshold = rest[0] if has_threshold else None
        want_cam = bool(rest[-1]) if has_cam else False
        if payload is None:
            return None, "", gr.update(value=None, visible=False)
        upload = as_upload(payload)
        try:
            predictions = model.classify(upload, threshold)
            overlay = model.cam(upload) if want_cam else None
        except HfclsError as error:
            return None, f"**{error}**", gr.update(value=None, visible=False)
        scores = {p["label"]: p["score"] for p in predictions}
        note = "" if predictions else f"no label scores {threshold} or more"
        return scores or None, note, gr.update(value=overlay, visible=want_cam)

    return handle


def many_images(model: AppModel, has_threshold: bool):
    """The handler of the many-images tab: (table, CSV file, summary)."""

    def handle(payloads, *rest):
        threshold = rest[0] if has_threshold else None
        if not payloads:
            return None, None, ""
        rows, csv, skipped = model.classify_many([as_upload(p) for p in payloads], threshold)
        width = max((len(row) for row in rows), default=1)
        headers = ["image", *(f"{c}_{k}" for k in range(1, (width - 1) // 2 + 1) for c in ("label", "score"))]
        rows = [row + [""] * (width - len(row)) for row in rows]
        summary = f"{len(rows)} image(s) classified"
        if skipped:
            summary += f"; skipped {len(skipped)} file(s) that are not images: {', '.join(skipped)}"
        return gr.update(value=rows, headers=headers), str(csv) if rows else None, summary

    return handle


def as_upload(payload: dict) -> Upload:
    """Gradio's file payload -> where the server holds the file, and the name the user gave it."""
    path = payload["path"]
    return Upload(path, payload.get("orig_name") or path.rsplit("/", 1)[-1])
