"""What the demo page asks of a model: one image's labels, many images' labels as a table and a CSV, and
where the model looked (Grad-CAM). Every answer comes from one `hfcls.pipeline` classifier, built once,
through the same decode, transform, input adapter and top-k rule as hfcls-demo, so the page gives exactly
hfcls-demo's labels and scores for the same file.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from hfcls.artifacts.weights import inspect_artifact
from hfcls.data.decode import DECODE_ERRORS
from hfcls.data.images import to_uint8_tensor
from hfcls.errors import HfclsError
from hfcls.extras import install_hint, is_installed
from hfcls.inference import pipeline, save_predictions
from hfcls.labels import MULTI_LABEL

CAM_SIZE = 256  # the overlay is drawn at the model's input size (16-32 px for digits): shown larger, pixels kept


@dataclass
class Upload:
    """A file the page received: where the server holds it, and the name the user gave it."""

    path: str
    name: str


class AppModel:
    """One artifact (folder, checkpoint, published file, .onnx), loaded once, answering the page."""

    def __init__(self, checkpoint, *, recipe=None, device=None, top_k=None, threshold=0.5, use_ema=None):
        self.artifact = inspect_artifact(checkpoint)
        self.classifier = pipeline(
            checkpoint, recipe, device, top_k, batch_size=32, num_workers=0, use_ema=use_ema, threshold=threshold
        )
        self.multi_label = self.classifier.problem_type == MULTI_LABEL
        self.threshold = threshold

    @property
    def class_names(self) -> list:
        return self.classifier.class_names

    def describe(self) -> str:
        config = self.classifier.model.config
        kind = "multi-label: every label scoring at least the threshold" if self.multi_label else "single-label"
        return f"`{config.model_type}`, {len(self.class_names)} classes ({kind}), from `{self.artifact.path}`"

    def cam_unavailable(self) -> str | None:
        """Why the page offers no Grad-CAM overlay, or None when it does."""
        if self.artifact.kind == "onnx":
            return "Grad-CAM needs PyTorch weights; an .onnx graph has none (serve the checkpoint it came from)"
        if not is_installed("pytorch_grad_cam"):
            return f"Grad-CAM needs pytorch-grad-cam; {install_hint('explain')}"
        return None

    def classify(self, upload: Upload, threshold: float | None = None) -> list:
        """[{label, score}] best first, as hfcls-demo prints them; a file that is no image is an HfclsError
        naming it by the name the user gave it."""
        self.pixels(upload)  # an unreadable file named as the user named it; scores() decodes as hfcls-demo does
        scores, _ = self.classifier.scores([upload.path])
        return self.classifier.top_labels(scores[0], threshold=threshold)

    def pixels(self, upload: Upload):
        """The image as the model sees it (uint8, after the eval transform), or an HfclsError in the user's words."""
        try:
            return self.classifier.transform(to_uint8_tensor(upload.path, self.classifier.max_image_pixels))
        except DECODE_ERRORS as error:
            raise HfclsError(
                f"{upload.name} is not an image hfcls can read ({error}); upload a PNG, JPEG, WebP, BMP or TIFF file"
            ) from None

    def classify_many(self, uploads: list, threshold: float | None = None) -> tuple:
        """(rows: [name, label_1, score_1, ...], the CSV of them as hfcls-demo --out writes it, the names
        of the files that are no images, skipped)."""
        scores, kept = self.classifier.scores([u.path for u in uploads], skip_bad_images=True)
        results = [
            (uploads[i].name, self.classifier.top_labels(row, threshold=threshold)) for row, i in zip(scores, kept)
        ]
        csv = save_predictions(results, Path(tempfile.mkdtemp(prefix="hfcls-app-")) / "predictions.csv")
        rows = [
            [name, *(v for p in predictions for v in (p["label"], round(p["score"], 4)))]
            for name, predictions in results
        ]
        skipped = [upload.name for i, upload in enumerate(uploads) if i not in kept]
        return rows, csv, skipped

    def cam(self, upload: Upload) -> np.ndarray:
        """The Grad-CAM of the predicted class over the image as the model saw it, enlarged for the page."""
        from hfcls.analysis.cam import activation_map, overlay

        result = activation_map(self.classifier.model, self.pixels(upload), self.classifier.inputs)
        picture = Image.fromarray(overlay(result))
        scale = max(1, CAM_SIZE // max(picture.size))
        return np.asarray(picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST))


def check_examples(files: list) -> list:
    """--examples' files, each one an image (decoded once now: a file that is not is refused by name)."""
    for file in files:
        try:
            to_uint8_tensor(file)
        except DECODE_ERRORS as error:
            raise HfclsError(
                f"examples: {file} is not an image ({error}); remove it or point --examples at a folder of images",
                param="examples",
            ) from None
    return files
