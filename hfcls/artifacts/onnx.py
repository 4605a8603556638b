"""ONNX export with proof, the library side of hfcls-export.

`export_onnx` traces the model with torch's dynamo exporter (torch.export + onnxscript),
writes the graph with the artifact's config, class names and preprocessing in its metadata
(so hfcls-eval, hfcls-demo and hfcls.pipeline read it like any other artifact), then
`check_onnx` runs onnxruntime and PyTorch on the same real images and compares them.

Tolerance: the largest |logit difference| must stay below TOLERANCE x max(1, largest |logit|).
float32 rounds each operation to ~1.2e-7 relative; reassociated sums (fused Conv+BN, other
GEMM blocking) over hundreds of layers put honest exports at 1e-7..1e-5 relative, so 1e-3
leaves two orders of margin, while an op exported wrongly (padding, layout, epsilon, a
dropped layer) moves logits by 1e-2 relative or more. A float16 graph rounds to ~1e-3 per
operation and is held to 2e-2. Top-1 may differ only where PyTorch's two best classes are
closer than that tolerance: a tie, not a disagreement.

With `quantize="int8"` the float32 graph, once proven, is quantized (hfcls.artifacts.quantize, which
explains the method and the bound) and the int8 graph written in its place if it stays within the
bound of the float32 one on the same images; an existing float32 .onnx file can be quantized too.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hfcls.artifacts.describe import model_config, preprocessor, run_recipe
from hfcls.artifacts.loading import load_model
from hfcls.artifacts.onnx_model import OnnxClassifier
from hfcls.artifacts.publish import published_metadata
from hfcls.artifacts.quantize import (
    CALIBRATION_IMAGES,
    Int8Check,
    check_int8,
    quantization_method,
    quantize_int8,
)
from hfcls.artifacts.run_dir import METADATA_KEY, ONNX_SUFFIX, RECIPE_FILE
from hfcls.artifacts.weights import inspect_artifact
from hfcls.data.build import align_labels, build_datasets
from hfcls.data.decode import DECODE_ERRORS, decode
from hfcls.data.images import expand_images, to_uint8_tensor
from hfcls.errors import HfclsError
from hfcls.files import check_output
from hfcls.labels import class_names_of, problem_type_of_model
from hfcls.models import LogitsOnly
from hfcls.predict.forward import forward_batch
from hfcls.predict.inputs import exported_inputs

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 18  # the opset torch's exporter implements; others are converted from it
TOLERANCE = {"float32": 1e-3, "float16": 2e-2}
BATCH = 32
QUANTIZE = ("int8",)


@dataclass
class OnnxCheck:
    """onnxruntime against PyTorch on the same images."""

    images: int
    max_abs_delta: float  # largest |logit difference|
    bound: float  # what it may reach: tolerance x max(1, largest |logit|)
    top1_agreement: float  # fraction of images with the same top-1 class
    real_disagreements: int  # top-1 differs where PyTorch's margin exceeded the bound
    accuracy_torch: float | None = None  # top-1 accuracy (%) when the images have labels
    accuracy_onnx: float | None = None

    @property
    def passed(self) -> bool:
        return self.max_abs_delta <= self.bound and self.real_disagreements == 0

    def summary(self) -> str:
        lines = [
            f"validated on {self.images} images: max |delta logit| {self.max_abs_delta:.3g} "
            f"(bound {self.bound:.3g}), top-1 agreement {100 * self.top1_agreement:.2f}%"
        ]
        if self.accuracy_torch is not None:
            lines.append(f"top-1 accuracy: pytorch {self.accuracy_torch:.2f}%, onnxruntime {self.accuracy_onnx:.2f}%")
        return "\n".join(lines)


@dataclass
class ExportChecks:
    """What export_onnx proved: the float32 graph against PyTorch (None for an .onnx source), and the int8
    graph against the float32 one when it quantized."""

    onnx: OnnxCheck | None
    int8: Int8Check | None = None

    def summary(self) -> str:
        return "\n".join(check.summary() for check in (self.onnx, self.int8) if check is not None)


# ----------------------------------------------------------------------------- export


def export_onnx(
    source,
    out,
    *,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = False,
    fp16: bool = False,
    images=None,
    split: str = "val",
    limit: int = 256,
    use_ema: bool | None = None,
    recipe=None,
    overwrite: bool = False,
    quantize: str | None = None,
) -> tuple[Path, ExportChecks]:
    """Export any artifact to `out` (.onnx) and prove it: onnxruntime against PyTorch on `images`
    (a file, folder or glob) or `limit` images spread over the recipe's `split` (default: the
    recipe of the artifact's run). Raises HfclsError, leaving nothing at `out`, if the check fails.
    `quantize="int8"`: the proven graph quantized (an .onnx source: that graph), written only within
    hfcls.artifacts.quantize's bound of it on the same images."""
    out = Path(out)
    if out.suffix != ONNX_SUFFIX:
        raise HfclsError(f"{out}: an ONNX file's name ends in {ONNX_SUFFIX}; e.g. {out.with_suffix(ONNX_SUFFIX)}")
    check_output(out, overwrite, kind="file", what="out", param="out")
    check_quantize(quantize, fp16)
    artifact = inspect_artifact(source)
    recipe = recipe if recipe is not None else run_recipe(artifact)
    if artifact.kind == "onnx":
        return quantized_graph(artifact, out, quantize, images, split, limit, recipe)
    model = load_model(artifact, use_ema=use_ema, recipe=recipe)
    processor = preprocessor(artifact, recipe)
    transform, inputs = exported_inputs(processor.to_dict(), str(artifact))
    pixels, labels = validation_images(images, recipe, split, limit, transform, class_names_of(model), artifact)
    tmp = out.with_name(f".{out.name}.tmp")
    program = export_graph(model, inputs(pixels[: 2 if dynamic_batch else 1]), opset, dynamic_batch, fp16)
    program.model.metadata_props[METADATA_KEY] = json.dumps(published_metadata(model, processor), sort_keys=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(tmp))
    tolerance = TOLERANCE["float16" if fp16 else "float32"]
    check = proven(
        tmp,
        lambda: check_onnx(OnnxClassifier(tmp, model.config), model, pixels, inputs, labels, tolerance),
        f"the ONNX export of {artifact} ({model.config.model_type}) does not match PyTorch",
        out,
    )
    if quantize is None:
        tmp.replace(out)
        return out, ExportChecks(check)
    try:
        int8 = write_int8(tmp, out, model.config, recipe, (transform, inputs), (pixels, labels), artifact)
    finally:
        tmp.unlink()
    return out, ExportChecks(check, int8)


def check_quantize(quantize: str | None, fp16: bool) -> None:
    if quantize is not None and quantize not in QUANTIZE:
        raise HfclsError(f"quantize {quantize}: hfcls quantizes to {', '.join(QUANTIZE)}", param="quantize")
    if quantize is not None and fp16:
        raise HfclsError(
            "quantize int8 starts from the float32 graph; leave out fp16 (an int8 graph is smaller still)",
            param="quantize",
        )


def quantized_graph(artifact, out: Path, quantize, images, split: str, limit: int, recipe):
    """An existing float32 .onnx graph (from hfcls-export) quantized: `export_onnx` for an .onnx source."""
    if quantize is None:
        raise HfclsError(
            f"{artifact} is an ONNX graph already; pass --quantize int8 to quantize it, or export the "
            "checkpoint or folder it came from"
        )
    fp32 = OnnxClassifier(artifact.path, model_config(artifact))
    if fp32.input_dtype != torch.float32:
        raise HfclsError(
            f"{artifact}: onnxruntime quantizes float32 graphs, and this one takes float16; quantize the "
            "float32 export (hfcls-export without --fp16)"
        )
    transform, inputs = exported_inputs(preprocessor(artifact).to_dict(), str(artifact))
    validation = validation_images(images, recipe, split, limit, transform, class_names_of(fp32), artifact)
    int8 = write_int8(artifact.path, out, fp32.config, recipe, (transform, inputs), validation, artifact)
    return out, ExportChecks(None, int8)


def write_int8(fp32_path: Path, out: Path, config, recipe, preprocessing: tuple, validation: tuple, where):
    """Quantize the float32 graph at `fp32_path` to `out` and return the Int8Check, or raise HfclsError
    leaving nothing there when onnxruntime cannot, or when the int8 graph leaves the bound of the float32
    one on the `validation` (pixels, labels). `preprocessing`: the (transform, inputs) of the export."""
    (transform, inputs), (pixels, labels) = preprocessing, validation
    method = quantization_method(fp32_path)
    fp32 = OnnxClassifier(fp32_path, config)
    calibration = None
    if method == "static":
        if recipe is None or recipe.data.train is None:
            raise HfclsError(
                f"{where} is a conv net, quantized statically: its activations are calibrated on the recipe's "
                "train images, and there is no recipe with data.train; pass --recipe"
            )
        names = class_names_of(fp32)
        images, _ = validation_images(None, recipe, "train", CALIBRATION_IMAGES, transform, names, where)
        calibration = (images, inputs)
    tmp = out.with_name(f".{out.name}.int8.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)

    def quantized():
        quantize_int8(fp32_path, tmp, method, calibration)
        return check_int8(fp32, OnnxClassifier(tmp, config), pixels, inputs, labels, method)

    check = proven(
        tmp, quantized, f"the int8 graph of {where} leaves the bound of its float32 graph (deploy that one)", out
    )
    tmp.replace(out)
    return check


def proven(tmp: Path, prove, failure: str, out: Path):
    """`prove()`'s check of the graph written to `tmp`; when it fails (or raises) `tmp` is removed and the
    HfclsError says `failure`, the figures, and that nothing was written to `out`."""
    try:
        check = prove()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if not check.passed:
        tmp.unlink()
        raise HfclsError(f"{failure}: {check.summary().replace(chr(10), '; ')}; nothing was written to {out}")
    return check


def export_graph(model, example: torch.Tensor, opset: int, dynamic_batch: bool, fp16: bool):
    """torch.onnx.export (dynamo) of the model's logits; an op or opset it cannot export is an
    HfclsError naming it and the model type."""
    import onnx

    model_type = model.config.model_type
    newest = onnx.defs.onnx_opset_version()
    if not 7 <= opset <= newest:
        raise HfclsError(
            f"opset {opset}: onnx {onnx.__version__} knows opsets 7 to {newest}; "
            f"use {DEFAULT_OPSET} (what torch's exporter implements) or another in that range",
            param="opset",
        )
    model = _exportable(model, fp16)
    for name in ("onnx_ir", "onnxscript"):  # their pass-by-pass INFO lines would bury the check's result
        logging.getLogger(name).setLevel(logging.WARNING)
    example = example.half() if fp16 else example
    dynamic = {"pixel_values": {0: torch.export.Dim("batch")}} if dynamic_batch else None
    try:
        program = torch.onnx.export(
            LogitsOnly(model).eval(),
            (example,),
            dynamo=True,
            opset_version=opset,
            dynamic_shapes=dynamic,
            verbose=False,
        )
    except Exception as error:  # torch.export and onnxscript raise many types; all mean "cannot export"
        raise HfclsError(
            f"cannot export {model_type} to ONNX at opset {opset}: {_export_failure(error)}; "
            "that op has no ONNX form in this torch; try another --opset, or deploy the "
            "Hugging Face folder instead"
        ) from None
    produced = program.model.opset_imports.get("", DEFAULT_OPSET)
    if produced != opset:  # torch keeps opset 18 when its version converter fails, and says so only in a log
        raise HfclsError(
            f"cannot export {model_type} at --opset {opset}: converting the graph from opset "
            f"{DEFAULT_OPSET} failed (it stayed at {produced}); use --opset {produced}"
        )
    return program


def _exportable(model, fp16: bool):
    # SDPA attention decomposes into a view torch's ONNX decomposition rejects (Swin, torch 2.14);
    # eager attention is the same arithmetic written out, and exports.
    if hasattr(model, "set_attn_implementation"):  # every transformers model; a no-op without attention
        model.set_attn_implementation("eager")
    # A copy: the float32 model stays the reference the check compares the graph with.
    return copy.deepcopy(model).half() if fp16 else model.float()


def _export_failure(error: Exception) -> str:
    """The line of an exporter error that says what failed, and the aten op when one is named."""
    causes, cause = [], error
    while cause is not None:
        causes.append(str(cause))
        cause = cause.__cause__
    text = "\n".join(causes)
    summary = re.search(r"Exception summary\s*\n\s*\n?(.+)", text)
    line = summary.group(1) if summary else text.strip().splitlines()[0] if text.strip() else type(error).__name__
    op = re.search(r"aten[.:]{1,2}\w+", text)
    return f"operator {op.group(0)}: {line.strip()}" if op and op.group(0) not in line else line.strip()


# ----------------------------------------------------------------------------- validation


def check_onnx(session_model, model, pixels: torch.Tensor, inputs, labels, tolerance: float) -> OnnxCheck:
    """Compare the ONNX graph's logits with the PyTorch model's (float32) on the same uint8 images."""
    model, problem_type = model.float().eval(), problem_type_of_model(model)
    with torch.inference_mode():
        ours, theirs = (
            torch.cat([forward_batch(predictor, batch, inputs, problem_type).logits for batch in pixels.split(BATCH)])
            for predictor in (model, session_model)
        )
    bound = tolerance * max(1.0, ours.abs().max().item())
    top2 = ours.topk(min(2, ours.shape[1]), dim=1).values
    margin = top2[:, 0] - top2[:, -1]
    differs = ours.argmax(1) != theirs.argmax(1)
    check = OnnxCheck(
        len(pixels),
        (ours - theirs).abs().max().item(),
        bound,
        1 - differs.float().mean().item(),
        int((differs & (margin > bound)).sum()),
    )
    if labels is not None:
        check.accuracy_torch = 100 * (ours.argmax(1) == labels).float().mean().item()
        check.accuracy_onnx = 100 * (theirs.argmax(1) == labels).float().mean().item()
    return check


def given_image(file: str) -> torch.Tensor:
    """One of the images the user named, or one line naming the file that is not one."""
    try:
        return to_uint8_tensor(file)
    except DECODE_ERRORS as error:
        raise HfclsError(
            f"images: {file} is not an image hfcls can read ({error}); pass only images", param="images"
        ) from None


def validation_images(images, recipe, split: str, limit: int, transform, names: list, where) -> tuple:
    """(uint8 N x 3 x H x W after the eval transform, labels or None): the files `images` names, else
    `limit` images spread evenly over the recipe's split (a folder's first images are often all of one
    class), labelled as the model's classes."""
    if limit < 1:
        raise HfclsError("limit must be at least 1", param="limit")
    if images is not None:
        return torch.stack([transform(given_image(f)) for f in expand_images(images)[0][:limit]]), None
    if recipe is None:
        raise HfclsError(
            f"{where} belongs to no run (no {RECIPE_FILE} beside it): pass --images (a folder or "
            "glob) or --recipe to validate the export on"
        )
    data = recipe.data
    splits = ("train", split) if split == "val" and data.train_val_split else (split,)
    if getattr(data, split) is None and not (split == "val" and data.train_val_split):
        raise HfclsError(f"the recipe has no data.{split} source to validate on; choose --split or pass --images")
    dataset = align_labels(build_datasets(data, recipe.seed, splits)[split], names, where=f"data.{split}")
    import datasets

    spread = np.linspace(0, len(dataset) - 1, min(limit, len(dataset))).round().astype(int).tolist()
    rows = dataset.select(spread).cast_column("image", datasets.Image(decode=False))
    pixels = [transform(decode(row["image"], data.to_rgb)) for row in rows]
    return torch.stack(pixels), torch.tensor(rows["label"])
