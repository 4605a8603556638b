"""The read side of an `.onnx` file from hfcls-export: its hfcls metadata, and the graph run by
onnxruntime behind the call a transformers model answers (`model(pixel_values=x).logits`), so
hfcls-eval, hfcls-demo and hfcls.pipeline use it like any other artifact.

The file's metadata (one `metadata_props` entry, key `hfcls`) holds what a published
.safetensors file holds: the model config, class names and eval preprocessing.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers.modeling_outputs import ImageClassifierOutput

from hfcls.artifacts.metadata import parse_metadata
from hfcls.artifacts.run_dir import METADATA_KEY
from hfcls.data.decode import MAX_IMAGE_PIXELS
from hfcls.errors import HfclsError

INSTALL = 'pip install "hfcls[export]"'


def onnx_metadata(path) -> dict:
    """The `hfcls` metadata an ONNX file was exported with, once what the graph declares is checked:
    where its external data lies, its input's shape, its output's class count."""
    try:
        import onnx
    except ImportError:
        raise HfclsError(f"reading {path} needs the onnx package; {INSTALL}") from None
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises protobuf's untyped errors
        raise HfclsError(
            f"cannot read {path} ({str(error).splitlines()[0]}); the file is damaged or not ONNX"
        ) from None
    raw = {entry.key: entry.value for entry in proto.metadata_props}.get(METADATA_KEY)
    if raw is None:
        raise HfclsError(
            f"{path} has no hfcls metadata (model config, class names, preprocessing); export it with hfcls-export"
        )
    metadata = parse_metadata(raw, path)
    check_external_data(proto, Path(path))
    check_graph_shapes(proto, Path(path), len(metadata["class_names"]))
    return metadata


def check_external_data(proto, path: Path) -> None:
    """Every tensor stored outside the file lies in a file of the graph's own folder, and within it:
    an absolute location, one climbing out (..) or a link leading out would have onnxruntime read
    whatever it names."""
    import onnx

    folder = path.resolve().parent
    for tensor in graph_tensors(proto.graph):
        if not onnx.external_data_helper.uses_external_data(tensor):
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        location = entries.get("location", "")
        target = (folder / location).resolve()
        if not location or os.path.isabs(location) or not target.is_relative_to(folder):
            raise HfclsError(
                f"{path}: tensor {tensor.name!r} keeps its data at {location!r}, outside the graph's folder "
                f"{folder}; hfcls reads external data only from files beside the .onnx: export it again"
            )
        end = int(entries.get("offset", 0)) + int(entries.get("length", 0))
        if not target.is_file() or target.stat().st_size < end:
            raise HfclsError(
                f"{path}: tensor {tensor.name!r} keeps its data in {location}, which is missing or too short "
                f"({end} bytes needed); copy the .onnx with its data files, or export it again"
            )


def graph_tensors(graph):
    """Every tensor a graph holds: its initializers and its nodes' tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            yield from ([attribute.t] if attribute.HasField("t") else [])
            yield from attribute.tensors
            for subgraph in [attribute.g] if attribute.HasField("g") else list(attribute.graphs):
                yield from graph_tensors(subgraph)


def check_graph_shapes(proto, path: Path, classes: int) -> None:
    """One image input (N, C, H, W) of a size a decoded image may have, and logits with one column per
    class, where the graph fixes those sizes."""
    if len(proto.graph.input) < 1 or len(proto.graph.output) < 1:
        raise HfclsError(f"{path}: the graph has no input or no output; export it again with hfcls-export")
    dims = [dim.dim_value or None for dim in proto.graph.input[0].type.tensor_type.shape.dim]
    height, width = (dims[2:] + [None, None])[:2]
    if len(dims) != 4 or (height and width and height * width > MAX_IMAGE_PIXELS):
        raise HfclsError(
            f"{path}: its input has shape {dims}; hfcls feeds a graph batches of images (N, C, H, W) of at "
            f"most {MAX_IMAGE_PIXELS:,} pixels: export it again with hfcls-export"
        )
    out = [dim.dim_value or None for dim in proto.graph.output[0].type.tensor_type.shape.dim]
    if len(out) != 2 or out[1] not in (None, classes):
        raise HfclsError(
            f"{path}: its output has shape {out} but its metadata names {classes} classes; the graph and its "
            "metadata belong to different models: export it again"
        )


def inference_session(path):
    try:
        import onnxruntime
    except ImportError:
        raise HfclsError(f"running {path} needs onnxruntime; {INSTALL}") from None
    wanted = ("CUDAExecutionProvider", "CPUExecutionProvider")
    providers = [p for p in wanted if p in onnxruntime.get_available_providers()]
    # As many CPU threads as torch has (hfcls.engine.threads chooses them for the cores free): onnxruntime
    # would take every core, and a graph and its PyTorch model would be timed on different shares of the machine.
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=providers)
    except Exception as error:  # onnxruntime's own untyped errors: an operator it lacks, a broken graph
        raise HfclsError(
            f"onnxruntime cannot load {path}: {first_line(error)}; export it again with hfcls-export"
        ) from None


def first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


class OnnxClassifier(torch.nn.Module):
    """An exported graph as a parameter-free module: logits from onnxruntime, on the input's device.

    A graph exported for a fixed batch size (no --dynamic-batch) is run in chunks of that size,
    the last one padded, so every loader's batches fit it.
    """

    def __init__(self, path, config):
        super().__init__()
        self.path, self.config = Path(path), config
        self.session = inference_session(path)
        graph_input = self.session.get_inputs()[0]
        self.input_name = graph_input.name
        self.input_dtype = torch.float16 if graph_input.type == "tensor(float16)" else torch.float32
        batch = graph_input.shape[0]
        self.fixed_batch = batch if isinstance(batch, int) else None
        self.image_shape = tuple(graph_input.shape[1:])

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> ImageClassifierOutput:
        if tuple(pixel_values.shape[1:]) != self.image_shape:
            raise HfclsError(
                f"{self.path} takes images of shape {self.image_shape}, got "
                f"{tuple(pixel_values.shape[1:])}; use the preprocessing it was exported with"
            )
        inputs = pixel_values.detach().to("cpu", self.input_dtype).contiguous()
        step = self.fixed_batch or len(inputs)
        chunks = [self._run(inputs[i : i + step]) for i in range(0, len(inputs), step)]
        return ImageClassifierOutput(logits=torch.cat(chunks).float().to(pixel_values.device))

    def _run(self, chunk: torch.Tensor) -> torch.Tensor:
        missing = (self.fixed_batch or len(chunk)) - len(chunk)
        if missing:
            chunk = torch.cat([chunk, chunk[-1:].expand(missing, *chunk.shape[1:])])
        try:
            logits = self.session.run(None, {self.input_name: chunk.numpy()})[0]
        except Exception as error:  # onnxruntime's own untyped errors
            raise HfclsError(f"onnxruntime cannot run {self.path}: {first_line(error)}") from None
        if logits.ndim != 2 or logits.shape[1] != self.config.num_labels:
            raise HfclsError(
                f"{self.path} answers logits of shape {tuple(logits.shape)} for {self.config.num_labels} classes; "
                "the graph and its metadata belong to different models: export it again"
            )
        return torch.from_numpy(logits)[: len(chunk) - missing]
