"""int8 export: a conv net quantized statically and a transformer dynamically, each proven against its float32
graph; the int8 graph evaluated through hfcls-eval's library agrees with onnxruntime run directly; a graph
onnxruntime cannot quantize, and one that leaves the bound, write nothing."""

import json
import re
from collections import Counter

import numpy as np
import onnx
import pytest
import torch

from hfcls.api import train
from hfcls.artifacts.export import image_processor, save_hf_folder
from hfcls.artifacts.loading import load_model
from hfcls.artifacts.onnx import export_onnx
from hfcls.artifacts.quantize import MIN_TOP1_AGREEMENT, quantization_method
from hfcls.artifacts.run_dir import METADATA_KEY
from hfcls.errors import HfclsError
from hfcls.recipe import load_recipe, recipe_from_dict

from commands import ok, user_error
from conftest import make_image_folder, tiny_recipe_dict


def ops(path) -> Counter:
    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def test_a_conv_net_is_quantized_statically_and_evaluates_as_onnxruntime_runs_it(digits_int8, command):
    recipe, out, printed = digits_int8  # hfcls-export best/ digits-int8.onnx --quantize int8 --limit 360
    agreement, fp32, int8 = map(float, re.search(INT8_LINES, printed).groups())
    assert agreement >= 100 * MIN_TOP1_AGREEMENT and fp32 - int8 <= 1.0 and f"wrote {out}" in printed
    graph = ops(out)
    assert graph["QuantizeLinear"] and graph["DequantizeLinear"] and graph["Conv"]  # QDQ around every conv
    int8_weights = sum(
        int(np.prod(i.dims)) for i in onnx.load(str(out)).graph.initializer if i.data_type == onnx.TensorProto.INT8
    )
    kernels = [p for p in load_model(recipe.parent / "work" / "best").parameters() if p.ndim >= 2]
    # Every conv and linear weight stored in int8, besides the int8 zero points (one a channel or activation).
    assert 0 < int8_weights - sum(p.numel() for p in kernels) < 0.05 * int8_weights
    assert [p.name for p in out.parent.glob("*.onnx*")] == [out.name]  # no temporary left
    # hfcls-eval reads the int8 graph like any artifact (its metadata came through) ...
    evaluated = command("hfcls-eval", recipe, out, "--metrics", "accuracy", "--metric-options", "topk=1")
    accuracy = float(re.search(r"\| accuracy_top1 \| +([\d.]+) \|", ok(evaluated)).group(1))
    assert accuracy == pytest.approx(int8, abs=0.01)
    # ... as onnxruntime itself gives it, on hfcls's inputs.
    import onnxruntime

    from hfcls.artifacts.describe import preprocessor
    from hfcls.artifacts.onnx import validation_images
    from hfcls.predict.inputs import exported_inputs

    transform, inputs = exported_inputs(preprocessor(out).to_dict(), str(out))
    names = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}[METADATA_KEY])["class_names"]
    pixels, labels = validation_images(None, load_recipe(recipe), "val", 360, transform, names, out)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: inputs(pixels).numpy()})[0]
    assert 100 * (logits.argmax(1) == labels.numpy()).mean() == pytest.approx(accuracy, abs=0.01)


INT8_LINES = (
    r"int8 \(static quantization\) against float32 on 360 images: top-1 agreement ([\d.]+)% \(bound 97%\)\n"
    r"top-1 accuracy: float32 ([\d.]+)%, int8 ([\d.]+)%"
)


VIT = {
    "model_type": "vit",
    "image_size": 16,
    "patch_size": 8,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
}


def test_a_transformer_is_quantized_dynamically(tmp_path):
    data = make_image_folder(tmp_path / "train", per_class=8), make_image_folder(tmp_path / "val", per_class=4, seed=1)
    recipe = tiny_recipe_dict(*data, model={"config": VIT}, train={"epochs": 3})
    train(recipe_from_dict(recipe), tmp_path / "w")
    out, checks = export_onnx(tmp_path / "w" / "best", tmp_path / "vit.onnx", quantize="int8")
    assert (checks.int8.method, checks.int8.images, checks.int8.top1_agreement) == ("dynamic", 12, 1.0)
    assert checks.int8.accuracy_int8 == checks.int8.accuracy_fp32 == 100.0
    graph = ops(out)
    assert graph["DynamicQuantizeLinear"] and graph["MatMulInteger"] and not graph["QuantizeLinear"]


def test_a_near_tie_past_the_bound_writes_nothing(tmp_path):
    """Two classes whose weights differ by 1e-3: float32 tells them apart image by image, int8 cannot."""
    data = make_image_folder(tmp_path / "train", per_class=8), make_image_folder(tmp_path / "val", per_class=8, seed=1)
    recipe = recipe_from_dict(tiny_recipe_dict(*data))
    from hfcls.models import build_model

    torch.manual_seed(0)
    model = build_model(recipe.model, ["cat", "dog", "fox"]).eval()
    with torch.no_grad():
        head = model.classifier[-1]
        head.bias.zero_()
        head.weight[1] = head.weight[0] + 1e-3 * torch.randn_like(head.weight[0])
    save_hf_folder(model, image_processor(recipe.data), tmp_path / "tie")
    with pytest.raises(HfclsError, match=r"leaves the bound .* top-1 agreement [\d.]+% \(bound 97%\).*nothing was"):
        export_onnx(tmp_path / "tie", tmp_path / "q.onnx", quantize="int8", recipe=recipe)
    assert not list(tmp_path.glob("*q.onnx*"))


def weightless_graph(path, metadata: str):
    """A classifier with nothing to quantize: the logits are the image's mean red, green and blue."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["pixel_values"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["logits"]),
        ],
        "mean_colour",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(model, {METADATA_KEY: metadata})
    onnx.save(model, str(path))
    return path


def test_a_graph_onnxruntime_cannot_quantize_is_one_line(tmp_path, command):
    from hfcls.artifacts.loading import load_predictor
    from hfcls.artifacts.publish import published_metadata
    from hfcls.models import build_model

    data = make_image_folder(tmp_path / "train", per_class=2), make_image_folder(tmp_path / "val", per_class=2, seed=1)
    recipe = recipe_from_dict(tiny_recipe_dict(*data))
    metadata = published_metadata(build_model(recipe.model, ["cat", "dog", "fox"]), image_processor(recipe.data))
    graph = weightless_graph(tmp_path / "mean.onnx", json.dumps(metadata))
    assert load_predictor(graph).config.id2label == {0: "cat", 1: "dog", 2: "fox"}  # a model hfcls reads
    with pytest.raises(HfclsError, match="cannot quantize this model to int8: .* this graph has none"):
        quantization_method(graph)
    out = tmp_path / "mean-int8.onnx"
    images = str(data[1])
    user_error(command("hfcls-export", graph, out, "--quantize", "int8", "--images", images), "cannot quantize")
    user_error(command("hfcls-export", graph, out, "--images", images), "ONNX graph already", "--quantize int8")
    assert not out.exists()
