"""Inference: the `hfcls.pipeline` Python API, and the library side of `hfcls-demo`.

    from hfcls import pipeline
    clf = pipeline("work_dirs/x/best")
    clf("cat.jpg")  # [{"label": "cat", "score": 0.98}, ...] like transformers.pipeline

Images go through the same steps as in `hfcls-eval`: PIL decode -> uint8 tensor
-> the v2 eval pipeline -> `Normalize` on the device, so predictions agree with
the evaluation and with `transformers.pipeline` on the exported folder.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from hfcls.artifacts.weights import inspect_artifact, load_predictor, preprocessor, run_recipe
from hfcls.data.images import eval_preprocessing, expand_images, to_uint8_tensor  # noqa: F401  (hfcls.inference's API)
from hfcls.engine.features import PenultimateFeatures
from hfcls.engine.precision import check_mixed_precision
from hfcls.engine.tta import with_tta
from hfcls.errors import HfclsError
from hfcls.models import class_names_of
from hfcls.recipe import load_recipe

logger = logging.getLogger(__name__)


class ImageClassifier:
    """Callable like `transformers.pipeline("image-classification")`; see `pipeline`."""

    def __init__(self, model, transform, normalize, device, top_k=5, batch_size=8, num_workers=0,
                 autocast_dtype=None, channels_last=False, tta=None):
        self.model = model.to(device).eval()
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.scorer = with_tta(self.model, tta)  # the model itself without test-time views
        self.class_names = class_names_of(model)
        self.transform, self.normalize = transform, normalize.to(device)
        self.device, self.top_k, self.batch_size, self.num_workers = device, top_k, batch_size, num_workers
        self.autocast_dtype, self.channels_last = autocast_dtype, channels_last

    def __call__(self, images, top_k=None, batch_size=None):
        """A path, PIL image or HWC uint8 array -> [{label, score}, ...] best first; a list -> a list of those."""
        single = not isinstance(images, (list, tuple))
        scores, _ = self.scores([images] if single else list(images), batch_size)
        results = [self.top_labels(row, top_k) for row in scores]
        return results[0] if single else results

    def top_labels(self, scores: torch.Tensor, top_k=None) -> list:
        values, ids = scores.topk(min(top_k or self.top_k, len(self.class_names)))
        return [{"label": self.class_names[i], "score": v} for v, i in zip(values.tolist(), ids.tolist())]

    def scores(self, images: list, batch_size=None, skip_bad_images=False):
        """(N, C) softmax scores, and the indices of `images` they belong to (all of them unless skipping)."""
        return self._outputs(images, batch_size, skip_bad_images, self._forward, len(self.class_names))

    def features(self, images: list, batch_size=None) -> torch.Tensor:
        """(N, D) embeddings: the pooled features the model's head reads (hfcls.engine.features), without TTA."""
        embedder = PenultimateFeatures(self.model)
        return self._outputs(list(images), batch_size, False, lambda pixels: self._run(embedder, pixels), 0)[0]

    @torch.inference_mode()
    def _outputs(self, images: list, batch_size, skip_bad_images, forward, width: int):
        loader = torch.utils.data.DataLoader(
            _Decoded(images, self.transform), batch_size=batch_size or self.batch_size,
            num_workers=self.num_workers, collate_fn=list)
        all_scores, kept = [], []
        for batch in loader:
            good = []
            for index, pixels, error in batch:
                if error is None:
                    good.append((index, pixels))
                elif skip_bad_images:
                    logger.warning("%s; skipped", error)
                else:
                    raise HfclsError(error)
            if good:
                kept.extend(i for i, _ in good)
                all_scores.append(forward(torch.stack([p for _, p in good])))
        return (torch.cat(all_scores) if all_scores else torch.empty(0, width)), kept

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._run(self.scorer, pixels).softmax(dim=1)

    def _run(self, model, pixels: torch.Tensor) -> torch.Tensor:
        """`model`'s float logits for a uint8 batch, on the CPU, with the recipe's precision and layout."""
        inputs = self.normalize(pixels.to(self.device))
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype
                    else nullcontext())
        with autocast:
            logits = model(pixel_values=inputs).logits
        return logits.float().cpu()


class _Decoded(torch.utils.data.Dataset):
    """Inputs decoded and transformed in DataLoader workers: (index, uint8 CHW tensor, None)
    or (index, None, what went wrong)."""

    def __init__(self, images: list, transform):
        self.images, self.transform = images, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = self.images[index]
        try:
            return index, self.transform(to_uint8_tensor(image)), None
        except (OSError, UnidentifiedImageError, ValueError) as error:
            return index, None, f"cannot decode image {_describe(image)} ({error})"


def _describe(image) -> str:
    if isinstance(image, (str, Path)):
        return str(image)
    return f"<{type(image).__name__}>"


# ----------------------------------------------------------------------------- building


def pipeline(model, recipe=None, device=None, top_k: int = 5, batch_size: int = 8, num_workers: int = 0,
             use_ema: bool | None = None, tta=None):
    """An image classifier from any artifact, called like `transformers.pipeline`'s.

    model: a best/ or latest/ folder, a checkpoints/epoch_N folder or a published
        .safetensors file, each carrying its architecture, class names and eval
        preprocessing; a bare .safetensors file also needs `recipe`.
    recipe: a recipe path or Recipe; default the run's recipe.yaml when the artifact sits
        in a work dir. Its mixed_precision and channels_last apply as in hfcls-eval.
    device: "cpu", "cuda", "cuda:1", ...; default CUDA when there is one.
    use_ema: for a training checkpoint, its EMA (the default when it has one) or raw weights.
    tta: "flip", "crops" or "flip,crops": scores averaged over those views (hfcls.engine.tta).
    `.features(images)` of the result gives the pooled features (embeddings) instead of scores.
    """
    if isinstance(recipe, (str, Path)):
        recipe = load_recipe(recipe)
    artifact = inspect_artifact(model)
    recipe = recipe or run_recipe(artifact)
    classifier = load_predictor(artifact, use_ema=use_ema, recipe=recipe)
    transform, normalize = eval_preprocessing(preprocessor(artifact, recipe).to_dict(), str(artifact))
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    autocast_dtype, channels_last = None, False
    if recipe is not None:
        # As hfcls-eval's Accelerator does: bf16 anywhere, fp16 on CUDA only.
        precision = recipe.train.mixed_precision
        check_mixed_precision(precision, device.type)
        if precision == "bf16" or (precision == "fp16" and device.type == "cuda"):
            autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        channels_last = recipe.train.channels_last
    return ImageClassifier(classifier, transform, normalize, device,
                           top_k, batch_size, num_workers, autocast_dtype, channels_last, tta)


# ----------------------------------------------------------------------------- hfcls-demo's inputs and pictures


def draw_prediction(image_path: str, predictions: list, out: Path) -> None:
    """Save the image with its top-k labels and scores written above it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with Image.open(image_path) as pil:
        pixels = np.asarray(pil.convert("RGB"))
    fig, ax = plt.subplots(figsize=(4, 4 + 0.25 * len(predictions)))
    ax.imshow(pixels, interpolation="nearest")
    ax.axis("off")
    ax.set_title("\n".join(f"{p['label']}: {p['score']:.3f}" for p in predictions), fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def classify_images(images: str, checkpoint, *, recipe=None, device=None, top_k: int = 5, batch_size: int = 32,
                    num_workers: int = 2, draw_to=None) -> list:
    """hfcls-demo's work: [(file, predictions best first)] for an image, a folder or a glob.

    Undecodable files among many are skipped with a warning; a single one is an error.
    `draw_to`: a .png for one image, a folder for many, with the predictions drawn on them.
    """
    if top_k < 1:
        raise HfclsError("--topk must be at least 1")
    files, many = expand_images(images)
    classifier = pipeline(checkpoint, recipe, device, top_k, batch_size, num_workers if many else 0)
    scores, kept = classifier.scores(files, skip_bad_images=many)
    results = []
    for row, index in zip(scores, kept):
        predictions = classifier.top_labels(row)
        results.append((files[index], predictions))
        if draw_to is not None:
            out = Path(draw_to) / f"{Path(files[index]).stem}.png" if many else Path(draw_to)
            draw_prediction(files[index], predictions, out)
    return results


PREDICTION_FILES = (".csv", ".json")


def save_predictions(results: list, path) -> Path:
    """classify_images' results as one row per image: path, then each top-k label and score
    (.csv: label_1, score_1, ...; .json: [{"path", "predictions": [{"label", "score"}, ...]}])."""
    import csv
    import json

    path = Path(path)
    if path.suffix not in PREDICTION_FILES:
        raise HfclsError(f"{path}: predictions are written as {' or '.join(PREDICTION_FILES)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        path.write_text(json.dumps([{"path": file, "predictions": predictions} for file, predictions in results],
                                   indent=1))
        return path
    k = max((len(predictions) for _, predictions in results), default=0)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", *(f"{column}_{rank}" for rank in range(1, k + 1) for column in ("label", "score"))])
        for file, predictions in results:
            writer.writerow([file, *(value for p in predictions for value in (p["label"], f"{p['score']:.6f}"))])
    return path
