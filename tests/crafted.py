"""Hostile inputs for tests: what a crafted pickle holds."""

import os


class RunsCommand:
    """Unpickled, calls os.system: `touch marker`, so a test can see whether loading ran it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def onnx_graph(
    path, metadata: str, outputs: int = 3, output_dims=None, op: str = "MatMul", external: str | None = None
):
    """A small .onnx file hfcls reads like an export: (1, 3, 16, 16) images -> global average pool -> a
    3 x `outputs` matrix -> logits, its `metadata` (a string) under the hfcls key. `output_dims` declares
    the output's shape (default [1, outputs]); `op`, the op of the last node (one onnxruntime lacks is
    put in its own domain); `external`, where the matrix's data is said to lie instead of in the file."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.eye(3, outputs, dtype=np.float32), "weights")
    if external is not None:
        weights.ClearField("raw_data")
        weights.data_location = TensorProto.EXTERNAL
        weights.external_data.add(key="location", value=external)
    domain = "" if op == "MatMul" else "com.example"
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["pixel_values"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["features"]),
            helper.make_node(op, ["features", "weights"], ["logits"], domain=domain),
        ],
        "crafted",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, output_dims or [1, outputs])],
        [weights],
    )
    imports = [helper.make_opsetid("", 18)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 9
    helper.set_model_props(model, {"hfcls": metadata})
    onnx.save(model, str(path))
    return path
