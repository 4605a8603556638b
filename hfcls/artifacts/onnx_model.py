"""The read side of an `.onnx` file from hfcls-export: its hfcls metadata, and the graph run by
onnxruntime behind the call a transformers model answers (`model(pixel_values=x).logits`), so
hfcls-eval, hfcls-demo and hfcls.pipeline use it like any other artifact.

The file's metadata (one `metadata_props` entry, key `hfcls`) holds what a published
.safetensors file holds: the model config, class names and eval preprocessing.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers.modeling_outputs import ImageClassifierOutput

from hfcls.artifacts.run_dir import METADATA_KEY
from hfcls.errors import HfclsError

INSTALL = 'pip install "hfcls[export]"'


def onnx_metadata(path) -> dict:
    """The `hfcls` metadata an ONNX file was exported with."""
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
    return json.loads(raw)


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
    return onnxruntime.InferenceSession(str(path), options, providers=providers)


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
        logits = self.session.run(None, {self.input_name: chunk.numpy()})[0]
        return torch.from_numpy(logits)[: len(chunk) - missing]
