"""Inference: the `hfcls.pipeline` Python API, and the library side of `hfcls-demo`.

    from hfcls import pipeline
    clf = pipeline("work_dirs/x/best")
    clf("cat.jpg")  # [{"label": "cat", "score": 0.98}, ...] like transformers.pipeline
    clf.retrieve("cat.jpg", "photos/")  # [{"image": "photos/b.jpg", "similarity": 0.91}, ...] most similar first

Images go through the same steps as in `hfcls-eval`: the loaders' decode rule
(hfcls.data.decode: bit depth, pixel limit) -> uint8 tensor -> the v2 eval pipeline
-> the input adapter on the device (hfcls.predict.inputs), so predictions agree with the
evaluation and with `transformers.pipeline` on the exported folder.
A multi-label model scores each class with its own sigmoid (as transformers.pipeline
does for its config's problem_type) and predicts every class at or above `threshold`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch

from hfcls.artifacts.describe import preprocessor, run_recipe
from hfcls.artifacts.gallery import gallery_index
from hfcls.artifacts.loading import load_predictor
from hfcls.artifacts.weights import inspect_artifact
from hfcls.data.decode import DECODE_ERRORS, MAX_IMAGE_PIXELS
from hfcls.data.images import expand_images, to_uint8_tensor
from hfcls.engine.precision import check_mixed_precision
from hfcls.errors import HfclsError
from hfcls.extras import pyplot
from hfcls.files import check_new_output, replacing, write_atomic
from hfcls.labels import MULTI_LABEL, class_names_of, problem_type_of_model
from hfcls.predict.forward import forward_batch
from hfcls.predict.inputs import ModelInputs, exported_inputs
from hfcls.predict.neighbors import nearest, normalized
from hfcls.predict.scores import classes_above
from hfcls.predict.tta import parse_tta
from hfcls.recipe import load_recipe

logger = logging.getLogger(__name__)


class ImageClassifier:
    """Callable like `transformers.pipeline("image-classification")`; see `pipeline`."""

    def __init__(
        self,
        model,
        transform,
        inputs: ModelInputs,
        top_k=None,
        batch_size=8,
        num_workers=0,
        max_image_pixels=MAX_IMAGE_PIXELS,
        threshold=0.5,
        tta=(),
        source=None,
        use_ema=None,
        processor_config=None,
    ):
        self.model = inputs.place(model).eval()
        # The artifact, which weights of it and its preprocessing: a gallery index is kept beside it, built by them.
        self.source, self.use_ema, self.processor_config = source, use_ema, processor_config
        self.class_names = class_names_of(model)
        self.problem_type, self.threshold, self.tta = problem_type_of_model(model), threshold, tta
        self.transform, self.inputs = transform, inputs
        self.top_k, self.batch_size, self.num_workers = top_k, batch_size, num_workers
        self.max_image_pixels = max_image_pixels

    def __call__(self, images, top_k=None, batch_size=None):
        """A path, PIL image or HWC uint8 array -> [{label, score}, ...] best first; a list -> a list of those.
        A multi-label model gives every label scoring >= the threshold (at most top_k when given)."""
        single = not isinstance(images, (list, tuple))
        scores, _ = self.scores([images] if single else list(images), batch_size)
        results = [self.top_labels(row, top_k) for row in scores]
        return results[0] if single else results

    def top_labels(self, scores: torch.Tensor, top_k=None, threshold: float | None = None) -> list:
        """One image's predictions: the top_k best (5 by default), or for a multi-label model every
        class at or above the threshold (the classifier's, unless given; at most top_k when given)."""
        top_k = top_k or self.top_k
        if self.problem_type == MULTI_LABEL:
            chosen = classes_above(scores, self.threshold if threshold is None else threshold)[:top_k]
        else:
            values, ids = scores.topk(min(top_k or 5, len(self.class_names)))
            chosen = zip(ids.tolist(), values.tolist())
        return [{"label": self.class_names[i], "score": v} for i, v in chosen]

    def scores(self, images: list, batch_size=None, skip_bad_images=False):
        """(N, C) scores (softmax, or sigmoids for a multi-label model; averaged over the TTA views), and
        the indices of `images` they belong to (all of them unless skipping)."""
        return self._outputs(images, batch_size, skip_bad_images, features=False)

    def features(self, images: list, batch_size=None) -> torch.Tensor:
        """(N, D) embeddings: the pooled features the model's head reads (hfcls.predict.features), without TTA."""
        return self._outputs(list(images), batch_size, False, features=True)[0]

    def retrieve(self, images, gallery: str, top_k: int = 5, overwrite: bool = False) -> list:
        """A path, PIL image or HWC uint8 array -> the `top_k` most similar images of `gallery` (a folder, or
        RECIPE.yaml:split), [{image, similarity, label (a labelled gallery)}, ...] most similar first; a list ->
        a list of those. Similarity is the cosine of the features the head reads. The gallery's features are
        computed once and kept beside the model (hfcls.artifacts.gallery); a gallery index that is out of date
        is refused unless `overwrite`."""
        single = not isinstance(images, (list, tuple))
        results, _ = self.matches([images] if single else list(images), gallery, top_k, overwrite)
        return results[0] if single else results

    def matches(self, images: list, gallery: str, top_k: int = 5, overwrite: bool = False, skip_bad_images=False):
        """`retrieve` for a list: (matches of each image, the indices of `images` they belong to)."""
        if top_k < 1:
            raise HfclsError(f"top_k must be at least 1, got {top_k}", param="top_k")
        if self.source is None:
            raise HfclsError("retrieve needs the classifier of a model artifact: build it with hfcls.pipeline(...)")
        index = gallery_index(
            gallery, self.source, self.use_ema, self.processor_config, self.gallery_features, overwrite
        )
        queries, kept = self._outputs(images, None, skip_bad_images, features=True)
        index.check_width(queries.shape[1])
        sims, rows = nearest(normalized(queries), normalized(index.features), top_k)
        found = [[index.match(int(r), float(v)) for v, r in zip(*pair)] for pair in zip(sims, rows)]
        return found, kept

    def gallery_features(self, images) -> tuple:
        """(features, indices kept) of a gallery's images; undecodable ones are skipped with a warning."""
        return self._outputs(images, None, True, features=True)

    @torch.inference_mode()
    def _outputs(self, images: list, batch_size, skip_bad_images, features: bool):
        loader = torch.utils.data.DataLoader(
            _Decoded(images, self.transform, self.max_image_pixels),
            batch_size=batch_size or self.batch_size,
            num_workers=self.num_workers if len(images) > 1 else 0,
            collate_fn=list,
        )  # one image: no worker
        outputs, kept = [], []
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
                out = forward_batch(
                    self.model,
                    torch.stack([p for _, p in good]),
                    self.inputs,
                    self.problem_type,
                    tta=() if features else self.tta,
                    features=features,
                )
                outputs.append((out.features if features else out.scores).cpu())
        width = 0 if features else len(self.class_names)
        return (torch.cat(outputs) if outputs else torch.empty(0, width)), kept


class _Decoded(torch.utils.data.Dataset):
    """Inputs decoded and transformed in DataLoader workers: (index, uint8 CHW tensor, None)
    or (index, None, what went wrong)."""

    def __init__(self, images: list, transform, max_pixels: int = MAX_IMAGE_PIXELS):
        self.images, self.transform, self.max_pixels = images, transform, max_pixels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = self.images[index]
        try:
            return index, self.transform(to_uint8_tensor(image, self.max_pixels)), None
        except DECODE_ERRORS as error:
            return index, None, f"cannot decode image {_describe(image)} ({error})"


def _describe(image) -> str:
    if isinstance(image, (str, Path)):
        return str(image)
    return f"<{type(image).__name__}>"


# ----------------------------------------------------------------------------- building


def pipeline(
    model,
    recipe=None,
    device=None,
    top_k: int | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    use_ema: bool | None = None,
    threshold: float = 0.5,
    tta=None,
):
    """An image classifier from any artifact, called like `transformers.pipeline`'s.

    model: a best/ or latest/ folder, a checkpoints/epoch_N folder or a published
        .safetensors file, each carrying its architecture, class names and eval
        preprocessing; a bare .safetensors file also needs `recipe`.
    recipe: a recipe path or Recipe; default the run's recipe.yaml when the artifact sits
        in a work dir. Its mixed_precision and channels_last apply as in hfcls-eval.
    device: "cpu", "cuda", "cuda:1", ...; default CUDA when there is one.
    top_k: how many labels a call returns: the best 5 by default; for a multi-label model,
        every label scoring >= `threshold` (at most top_k when given).
    use_ema: for a training checkpoint, its EMA (the default when it has one) or raw weights.
    tta: "flip", "crops" or "flip,crops": scores averaged over those views (hfcls.predict.tta).
    `.features(images)` of the result gives the pooled features (embeddings) instead of scores, and
    `.retrieve(images, gallery)` the most similar images of a folder or a recipe's split.
    """
    check_pipeline_arguments(top_k, threshold, batch_size, num_workers)
    tta, device = parse_tta(tta), torch_device(device)
    if isinstance(recipe, (str, Path)):
        recipe = load_recipe(recipe)
    artifact = inspect_artifact(model)
    recipe = recipe or run_recipe(artifact)
    classifier = load_predictor(artifact, use_ema=use_ema, recipe=recipe)
    settings, max_pixels = {}, MAX_IMAGE_PIXELS
    if recipe is not None:
        check_mixed_precision(recipe.train.mixed_precision, device.type)
        settings = {"channels_last": recipe.train.channels_last, "mixed_precision": recipe.train.mixed_precision}
        max_pixels = recipe.data.max_image_pixels
    processor = preprocessor(artifact, recipe).to_dict()
    transform, inputs = exported_inputs(processor, str(artifact), device, **settings, max_pixels=max_pixels)
    return ImageClassifier(
        classifier,
        transform,
        inputs,
        top_k,
        batch_size,
        num_workers,
        max_pixels,
        threshold,
        tta,
        source=artifact,
        use_ema=use_ema,
        processor_config=processor,
    )


def check_pipeline_arguments(top_k, threshold: float, batch_size: int, num_workers: int) -> None:
    """Refuse, before anything is loaded, an argument `pipeline` cannot use."""
    if top_k is not None and top_k < 1:
        raise HfclsError(f"top_k must be at least 1, got {top_k}", param="top_k")
    if not 0 <= threshold <= 1:
        raise HfclsError(f"threshold is a sigmoid score between 0 and 1, got {threshold}", param="threshold")
    if batch_size < 1:
        raise HfclsError(f"batch_size must be at least 1, got {batch_size}", param="batch_size")
    if num_workers < 0:
        raise HfclsError(f"num_workers must be 0 or more, got {num_workers}", param="num_workers")


def torch_device(name: str | None) -> torch.device:
    """The device `name` means (default: CUDA when there is one); one that is not here is an error."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise HfclsError(
            f"device {name}: not a device torch knows; use cpu, cuda, cuda:1, ...", param="device"
        ) from None
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise HfclsError(
            f"device {name}: this machine has {torch.cuda.device_count()} CUDA device(s); use cpu or another index",
            param="device",
        )
    return device


# ----------------------------------------------------------------------------- hfcls-demo's inputs and pictures


def check_picture_path(path) -> None:
    """Refuse, before any work, a picture file matplotlib cannot write."""
    pyplot("drawing the predictions (--out x.png)")  # matplotlib, or the line naming its extra
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = FigureCanvasBase.get_supported_filetypes()
    if Path(path).suffix.lower().lstrip(".") not in kinds:
        raise HfclsError(
            f"draw_to {path}: not a picture file matplotlib writes; end it in .png (or "
            f"{', '.join('.' + kind for kind in sorted(kinds) if kind != 'png')})",
            param="draw_to",
        )


def draw_prediction(image_path: str, predictions: list, out: Path) -> None:
    """Save the image with its top-k labels and scores written above it."""
    plt = pyplot("drawing the predictions (--out x.png)")
    pixels = to_uint8_tensor(image_path, max_pixels=math.inf).permute(1, 2, 0).numpy()  # classified already
    fig, ax = plt.subplots(figsize=(4, 4 + 0.25 * len(predictions)))
    ax.imshow(pixels, interpolation="nearest")
    ax.axis("off")
    ax.set_title("\n".join(f"{p['label']}: {p['score']:.3f}" for p in predictions), fontsize=10)
    fig.tight_layout()
    with replacing(out) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def classify_images(
    images: str,
    checkpoint,
    *,
    recipe=None,
    device=None,
    top_k: int | None = None,
    batch_size: int = 32,
    num_workers: int = 2,
    draw_to=None,
    threshold: float = 0.5,
) -> list:
    """hfcls-demo's work: [(file, predictions best first)] for an image, a folder or a glob.

    Predictions are the top_k best (5 by default), or for a multi-label model every class
    scoring >= `threshold` (at most top_k when given).
    Undecodable files among many are skipped with a warning; a single one is an error.
    `draw_to`: a .png for one image, a folder for many, with the predictions drawn on them.
    """
    files, many = expand_images(images)
    if draw_to is not None and not many:
        check_picture_path(draw_to)
    classifier = pipeline(checkpoint, recipe, device, top_k, batch_size, num_workers, threshold=threshold)
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
    if path.suffix == ".json":
        rows = [{"path": file, "predictions": predictions} for file, predictions in results]
        write_atomic(path, json.dumps(rows, indent=1))
        return path
    k = max((len(predictions) for _, predictions in results), default=0)
    with replacing(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", *(f"{column}_{rank}" for rank in range(1, k + 1) for column in ("label", "score"))])
        for file, predictions in results:
            writer.writerow([file, *(value for p in predictions for value in (p["label"], f"{p['score']:.6f}"))])
    return path


# ----------------------------------------------------------------------------- hfcls-retrieve


def retrieve_images(
    queries: list,
    checkpoint,
    gallery: str,
    *,
    recipe=None,
    device=None,
    top_k: int = 5,
    batch_size: int = 32,
    num_workers: int = 2,
    use_ema: bool | None = None,
    overwrite: bool = False,
) -> list:
    """hfcls-retrieve's work: [(query file, matches most similar first)] for images, folders or globs.
    Undecodable files among many are skipped with a warning; a single one is an error."""
    files, many = [], len(queries) > 1
    for query in queries:
        found, several = expand_images(query)
        files.extend(found)
        many |= several
    classifier = pipeline(checkpoint, recipe, device, batch_size=batch_size, num_workers=num_workers, use_ema=use_ema)
    found, kept = classifier.matches(files, gallery, top_k, overwrite, skip_bad_images=many)
    return [(files[index], matches) for index, matches in zip(kept, found)]


MATCH_FILES = (".csv", ".json")


def check_matches_path(path, overwrite: bool) -> None:
    """Refuse, before any work, a matches file of another kind, or one that would replace a file."""
    if Path(path).suffix not in MATCH_FILES:
        raise HfclsError(f"out {path}: matches are written as {' or '.join(MATCH_FILES)}", param="out")
    check_new_output(path, overwrite, "out", param="out")


def save_matches(results: list, path) -> Path:
    """retrieve_images' results: .csv one row per match (query, rank, image, similarity, label), .json
    [{"query", "matches": [{"image", "similarity", "label"}, ...]}]."""
    import csv
    import io
    import json

    path = Path(path)
    if path.suffix == ".json":
        content = json.dumps([{"query": query, "matches": matches} for query, matches in results], indent=1)
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["query", "rank", "image", "similarity", "label"])
        for query, matches in results:
            for rank, m in enumerate(matches, 1):
                writer.writerow([query, rank, m["image"], f"{m['similarity']:.6f}", m.get("label", "")])
        content = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, content)
    return path
