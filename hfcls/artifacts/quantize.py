"""int8 ONNX graphs with onnxruntime.quantization, and their proof against the float32 graph: the library
side of `hfcls-export --quantize int8` (hfcls.artifacts.onnx.export_onnx runs it).

Which quantization a graph gets is read from the graph itself (an .onnx file has no model class):
- A transformer (attention: Softmax nodes inside the graph; ViT, DeiT, Swin, ...) is quantized dynamically
  (`quantize_dynamic`): int8 weights per channel, activations quantized at run time from each batch's own
  range, as onnxruntime advises for transformers, whose activation ranges vary from input to input.
- A conv net (no attention, ConvNeXt with its Linear layers too) is quantized statically
  (`quantize_static`) in the QDQ format: int8 weights per output channel, uint8 activations whose
  ranges are calibrated (MinMax) on CALIBRATION_IMAGES images of the recipe's train split, spread over it
  and seen through the eval transform, as the model sees them. uint8 x int8 is what x86's VNNI
  instructions multiply: ResNet-50 ran 1.9x faster than float32 with it, no faster with int8 activations
  (onnxruntime 1.32, an AMD EPYC with AVX512-VNNI). Without VNNI the same product may saturate
  (onnxruntime's quantization notes); the check below, on the exporting machine, catches what it costs.

The bound (`Int8Check.passed`): onnxruntime runs the float32 and the int8 graph on the same validation
images (those the float32 export was checked on); the int8 graph is written only when it agrees with the
float32 top-1 on at least MIN_TOP1_AGREEMENT of them and, where the images are labelled, its top-1
accuracy is at most MAX_ACCURACY_DROP points below the float32 graph's. Per-channel post-training
int8 usually costs a CNN or a ViT a few tenths of a point of top-1; a 1-point drop is what a deployment
would notice, so it is the limit. Accuracy alone can hide a graph that swaps classes both ways:
97 % agreement refuses one that changes the answer for one image in thirty. Measured
(benchmarks/README.md): the digits ResNet keeps 100 %, a ResNet-50 trained one epoch (15.6 % top-1,
small margins between its classes) 97.5 %.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from hfcls.errors import HfclsError
from hfcls.labels import problem_type_of_model
from hfcls.predict.forward import forward_batch

MIN_TOP1_AGREEMENT = 0.97
MAX_ACCURACY_DROP = 1.0  # points of top-1 accuracy
CALIBRATION_IMAGES = 128
WEIGHTED_OPS = {"Conv", "MatMul", "Gemm"}
QUANTIZED_OPS = {"QuantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger", "QLinearConv"}
BATCH = 32


@dataclass
class Int8Check:
    """The int8 graph against the float32 graph, on the same images."""

    method: str  # "static" or "dynamic"
    images: int
    top1_agreement: float  # fraction of images with the same top-1 class
    accuracy_fp32: float | None = None  # top-1 accuracy (%) when the images have labels
    accuracy_int8: float | None = None

    @property
    def accuracy_drop(self) -> float:
        return 0.0 if self.accuracy_fp32 is None else self.accuracy_fp32 - self.accuracy_int8

    @property
    def passed(self) -> bool:
        return self.top1_agreement >= MIN_TOP1_AGREEMENT and self.accuracy_drop <= MAX_ACCURACY_DROP

    def summary(self) -> str:
        lines = [
            f"int8 ({self.method} quantization) against float32 on {self.images} images: top-1 agreement "
            f"{100 * self.top1_agreement:.2f}% (bound {100 * MIN_TOP1_AGREEMENT:.0f}%)"
        ]
        if self.accuracy_fp32 is not None:
            lines.append(
                f"top-1 accuracy: float32 {self.accuracy_fp32:.2f}%, int8 {self.accuracy_int8:.2f}% "
                f"(change {self.accuracy_int8 - self.accuracy_fp32:+.2f} points, bound -{MAX_ACCURACY_DROP:g})"
            )
        return "\n".join(lines)


def quantization_method(graph_path) -> str:
    """ "dynamic" for a transformer (its attention's Softmax: the exported logits have none after them),
    "static" for a conv net. A graph whose Conv, MatMul and Gemm nodes read no weights is refused:
    those weights are what onnxruntime quantizes."""
    import onnx

    graph = onnx.load(str(graph_path), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    if not any(node.op_type in WEIGHTED_OPS and weights.intersection(node.input) for node in graph.node):
        raise HfclsError(
            f"{graph_path}: onnxruntime cannot quantize this model to int8: it quantizes the weights of "
            "Conv, MatMul and Gemm nodes, and this graph has none; deploy the float32 export"
        )
    return "dynamic" if any(node.op_type == "Softmax" for node in graph.node) else "static"


class Calibration:
    """onnxruntime's CalibrationDataReader: the calibration images one at a time (what every graph takes,
    one exported for batch 1 too), normalised when asked for. It serves them in ranges of STRIDE
    (`set_range`): onnxruntime then folds each range's activations into the running min/max and lets them
    go, where it would otherwise hold every activation of every image at once (gigabytes for ResNet-50)."""

    STRIDE = 8

    def __init__(self, name: str, pixels: torch.Tensor, inputs):
        usable = len(pixels) - len(pixels) % min(self.STRIDE, len(pixels))
        self.name, self.pixels, self.inputs = name, pixels[:usable], inputs
        self.stride = min(self.STRIDE, usable)
        self.set_range(0, usable)

    def __len__(self):
        return len(self.pixels)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.next, self.end = start_index, end_index

    def get_next(self):
        if self.next >= self.end:
            return None
        self.next += 1
        return {self.name: self.inputs(self.pixels[self.next - 1 : self.next]).float().numpy()}


def quantize_int8(fp32_path: Path, out: Path, method: str, calibration: tuple | None = None) -> None:
    """Write the int8 graph of `fp32_path` to `out`: `method` "dynamic", or "static" with `calibration`,
    (uint8 images after the eval transform, the input adapter that normalises them). A graph onnxruntime
    fails on is an HfclsError naming why."""
    import onnx
    from onnxruntime import quantization as q

    logging.getLogger("root").setLevel(logging.ERROR)  # onnxruntime's advice to pre-process, on every call
    try:
        if method == "dynamic":
            q.quantize_dynamic(fp32_path, out, weight_type=q.QuantType.QInt8, per_channel=True)
        else:
            input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
            reader = Calibration(input_name, *calibration)
            q.quantize_static(
                fp32_path,
                out,
                reader,
                quant_format=q.QuantFormat.QDQ,
                per_channel=True,
                activation_type=q.QuantType.QUInt8,
                weight_type=q.QuantType.QInt8,
                extra_options={"CalibStridedMinMax": reader.stride},
            )
    except Exception as error:  # onnxruntime raises many types; all mean "cannot quantize this graph"
        out.unlink(missing_ok=True)
        line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise HfclsError(
            f"{fp32_path}: onnxruntime cannot quantize this model to int8 ({method}): {line}; deploy the float32 export"
        ) from None
    ops = {node.op_type for node in onnx.load(str(out), load_external_data=False).graph.node}
    if not ops & QUANTIZED_OPS:
        out.unlink()
        raise HfclsError(
            f"{fp32_path}: onnxruntime quantized none of this model's nodes to int8; deploy the float32 export"
        )


def check_int8(fp32_model, int8_model, pixels: torch.Tensor, inputs, labels, method: str) -> Int8Check:
    """Top-1 agreement and accuracies of the two graphs (OnnxClassifier modules) on the same uint8 images."""
    problem_type = problem_type_of_model(fp32_model)
    with torch.inference_mode():
        ours, theirs = (
            torch.cat([forward_batch(model, batch, inputs, problem_type).logits for batch in pixels.split(BATCH)])
            for model in (fp32_model, int8_model)
        )
    check = Int8Check(method, len(pixels), (ours.argmax(1) == theirs.argmax(1)).float().mean().item())
    if labels is not None and labels.ndim == 1:  # class ids; multi-hot labels have no top-1 accuracy
        check.accuracy_fp32 = 100 * (ours.argmax(1) == labels).float().mean().item()
        check.accuracy_int8 = 100 * (theirs.argmax(1) == labels).float().mean().item()
    return check
