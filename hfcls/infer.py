"""Inference: the `hfcls.pipeline` Python API and the `hfcls-demo IMAGE CHECKPOINT` command.

    from hfcls import pipeline
    clf = pipeline("work_dirs/x/best")
    clf("cat.jpg")  # [{"label": "cat", "score": 0.98}, ...] like transformers.pipeline

Images go through the same steps as in `hfcls-eval`: PIL decode -> uint8 tensor
-> the v2 eval pipeline -> `Normalize` on the device, so predictions agree with
the evaluation and with `transformers.pipeline` on the exported folder.
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as F

from hfcls.loading import checkpoint_kind, class_names_of, load_classifier
from hfcls.data.transforms import Normalize, build_pipeline
from hfcls.errors import HfclsError, cli_entry
from hfcls.precision import check_mixed_precision
from hfcls.recipe import load_recipe

logger = logging.getLogger(__name__)

RESAMPLE_NAMES = {2: "bilinear", 3: "bicubic"}  # PIL codes, as preprocessor configs store them


class ImageClassifier:
    """Callable like `transformers.pipeline("image-classification")`; see `pipeline`."""

    def __init__(self, model, transform, normalize, device, top_k=5, batch_size=8, num_workers=0,
                 autocast_dtype=None, channels_last=False):
        self.model = model.to(device).eval()
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
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

    @torch.inference_mode()
    def scores(self, images: list, batch_size=None, skip_bad_images=False):
        """(N, C) softmax scores, and the indices of `images` they belong to (all of them unless skipping)."""
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
                all_scores.append(self._forward(torch.stack([p for _, p in good])))
        num_classes = len(self.class_names)
        return (torch.cat(all_scores) if all_scores else torch.empty(0, num_classes)), kept

    def _forward(self, pixels: torch.Tensor) -> torch.Tensor:
        inputs = self.normalize(pixels.to(self.device))
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        autocast = (torch.autocast(self.device.type, dtype=self.autocast_dtype) if self.autocast_dtype
                    else nullcontext())
        with autocast:
            logits = self.model(pixel_values=inputs).logits
        return logits.float().softmax(dim=1).cpu()


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


def to_uint8_tensor(image) -> torch.Tensor:
    """A path, PIL image or HWC/HW uint8 array -> uint8 CHW RGB tensor, decoded as hfcls's loaders do."""
    if isinstance(image, (str, Path)):
        with Image.open(image) as pil:
            return F.pil_to_tensor(pil.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise ValueError(f"arrays must be uint8 HxWxC or HxW, got {image.dtype}")
        image = Image.fromarray(image)
    if isinstance(image, Image.Image):
        return F.pil_to_tensor(image.convert("RGB"))
    raise ValueError(f"expected a path, PIL image or numpy array, got {type(image).__name__}")


def _describe(image) -> str:
    if isinstance(image, (str, Path)):
        return str(image)
    return f"<{type(image).__name__}>"


# ----------------------------------------------------------------------------- building


def pipeline(model, recipe=None, device=None, top_k: int = 5, batch_size: int = 8, num_workers: int = 0):
    """An image classifier from a checkpoint, called like `transformers.pipeline`'s.

    model: a best/ or latest/ folder (preprocessing from its preprocessor_config.json),
        a checkpoints/epoch_N folder or a published .safetensors file (these two need the
        recipe, found next to them in the work dir or given as `recipe`).
    recipe: a recipe path or Recipe; its mixed_precision and channels_last apply as in hfcls-eval.
    device: "cpu", "cuda", "cuda:1", ...; default CUDA when there is one.
    """
    if isinstance(recipe, (str, Path)):
        recipe = load_recipe(recipe)
    kind = checkpoint_kind(model)
    if recipe is None and kind != "hf":
        recipe = _recipe_near(Path(model))
    classifier = load_classifier(model, recipe)
    if kind == "hf":
        specs, mean, std = eval_transform_from_preprocessor(Path(model) / "preprocessor_config.json")
    else:
        specs, mean, std = recipe.data.eval_pipeline, recipe.data.mean, recipe.data.std
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    autocast_dtype, channels_last = None, False
    if recipe is not None:
        # As hfcls-eval's Accelerator does: bf16 anywhere, fp16 on CUDA only.
        precision = recipe.train.mixed_precision
        check_mixed_precision(precision, device.type)
        if precision == "bf16" or (precision == "fp16" and device.type == "cuda"):
            autocast_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        channels_last = recipe.train.channels_last
    return ImageClassifier(classifier, build_pipeline(specs, "eval transforms"), Normalize(mean, std), device,
                           top_k, batch_size, num_workers, autocast_dtype, channels_last)


def _recipe_near(checkpoint: Path):
    """work_dir/recipe.yaml, for work_dir/checkpoints/epoch_N or a weights file in the work dir."""
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        if (folder / "recipe.yaml").is_file():
            return load_recipe(folder / "recipe.yaml")
    raise HfclsError(f"checkpoint {checkpoint} holds weights only and no recipe.yaml is next to it; "
                     "pass the recipe it was trained with (--recipe / recipe=)")


def eval_transform_from_preprocessor(path: Path):
    """(eval pipeline specs, mean, std) equal to an exported preprocessor_config.json:
    the inverse of hfcls.data.transforms.preprocessor_kwargs."""
    if not path.is_file():
        raise HfclsError(f"{path} is missing; hfcls needs it for the preprocessing (export the folder again)")
    config = json.loads(path.read_text())
    resample = config.get("resample", 2)
    scaled = config.get("do_rescale", True) and abs(config.get("rescale_factor", 1 / 255) - 1 / 255) < 1e-12
    if not config.get("do_resize", True) or resample not in RESAMPLE_NAMES or not scaled:
        raise HfclsError(f"{path}: only resize (bilinear or bicubic) + optional center crop + rescale by 1/255 "
                         "+ normalize are supported; pass the recipe instead")
    size = config["size"]
    specs = [{"type": "Resize", "size": size.get("shortest_edge") or [size["height"], size["width"]],
              "interpolation": RESAMPLE_NAMES[resample]}]
    if config.get("do_center_crop"):
        crop = config["crop_size"]
        specs.append({"type": "CenterCrop", "size": [crop["height"], crop["width"]]})
    if config.get("do_normalize", True):
        return specs, config["image_mean"], config["image_std"]
    return specs, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]


# ----------------------------------------------------------------------------- hfcls-demo


def expand_images(pattern: str) -> tuple[list, bool]:
    """IMAGE as the demo takes it -> (files, is_many): a file, a folder (all files below it) or a glob."""
    path = Path(pattern)
    if path.is_file():
        return [str(path)], False
    if path.is_dir():
        files = sorted(str(p) for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    else:
        files = sorted(p for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not files:
        raise HfclsError(f"no image files at {pattern}; pass an image, a folder or a glob such as 'photos/*.jpg'")
    return files, True


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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="hfcls-demo", description="Classify images with a trained checkpoint.")
    parser.add_argument("image", help="an image file, a folder of images, or a glob (quote it)")
    parser.add_argument("checkpoint", help="a best/ or latest/ folder, a checkpoints/epoch_N folder, "
                        "or a published .safetensors file")
    parser.add_argument("--recipe", help="the training recipe (needed for weights-only checkpoints "
                        "without a recipe.yaml next to them)")
    parser.add_argument("--topk", type=int, default=5)
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: CUDA when available)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-workers", type=int, default=2, help="processes decoding images")
    parser.add_argument("--out", help="save the image with its prediction drawn on it (a .png file; "
                        "a folder when IMAGE is a folder or glob)")
    return parser.parse_args(argv)


@cli_entry
def cli(argv=None):
    args = parse_args(argv)
    if args.topk < 1:
        raise HfclsError("--topk must be at least 1")
    files, many = expand_images(args.image)
    logging.basicConfig(format="%(levelname)s: %(message)s")
    import transformers

    transformers.utils.logging.disable_progress_bar()
    classifier = pipeline(args.checkpoint, args.recipe, args.device, args.topk, args.batch_size,
                          args.num_workers if many else 0)
    scores, kept = classifier.scores(files, skip_bad_images=many)
    for row, index in zip(scores, kept):
        predictions = classifier.top_labels(row)
        print(files[index])
        for rank, p in enumerate(predictions, 1):
            print(f"  {rank}. {p['label']}  {p['score']:.4f}")
        if args.out:
            out = Path(args.out) / f"{Path(files[index]).stem}.png" if many else Path(args.out)
            draw_prediction(files[index], predictions, out)
    if args.out:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    cli()
