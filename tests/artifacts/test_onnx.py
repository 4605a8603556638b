"""ONNX export: every zoo family exports and matches PyTorch (the oracle) in onnxruntime; the
digits model's graph evaluates through hfcls-eval's library with the PyTorch metrics; bad
opsets, ops and uses are one-line errors."""

import pytest
import torch
from transformers import AutoConfig, AutoModelForImageClassification

from hfcls.artifacts.export import image_processor, save_hf_folder
from hfcls.artifacts.loading import load_predictor
from hfcls.artifacts.onnx import TOLERANCE, _export_failure, export_graph, export_onnx
from hfcls.artifacts.onnx_model import OnnxClassifier
from hfcls.artifacts.publish import publish
from hfcls.artifacts.weights import inspect_artifact
from hfcls.errors import HfclsError
from hfcls.labels import label_maps
from hfcls.recipe.schema import DataSection

from conftest import make_image_folder
from families import FAMILIES

CLASSES = ["cat", "dog", "fox"]


def tiny_folder(tmp_path, model_type):
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, **FAMILIES[model_type], **label_maps(CLASSES))
    model = AutoModelForImageClassification.from_config(config).eval()
    data = DataSection(
        mean=[0.5] * 3,
        std=[0.25] * 3,
        eval_pipeline=[{"type": "Resize", "size": 32}, {"type": "CenterCrop", "size": 32}],
    )
    save_hf_folder(model, image_processor(data), tmp_path / "model")
    return tmp_path / "model", model


@pytest.mark.slow
@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_every_family_exports_and_matches_pytorch(tmp_path, model_type):
    folder, model = tiny_folder(tmp_path, model_type)
    images = make_image_folder(tmp_path / "images", per_class=2, size=40)
    out, checks = export_onnx(folder, tmp_path / "m.onnx", images=str(images), dynamic_batch=True)
    check = checks.onnx
    assert check.passed and check.images == 6 and check.top1_agreement == 1.0
    # Independently of the check: onnxruntime on a new batch size against PyTorch itself.
    graph = load_predictor(out)
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        expected = model(pixel_values=x).logits
    got = graph(pixel_values=x).logits
    assert got.shape == (5, 3)
    assert (got - expected).abs().max() <= TOLERANCE["float32"] * max(1, expected.abs().max())
    assert graph.config.id2label == {0: "cat", 1: "dog", 2: "fox"}


def test_digits_graph_evaluates_as_the_pytorch_model(trained_digits, tmp_path):
    from hfcls.evaluation.checkpoint import evaluate_checkpoint
    from hfcls.evaluation.request import EvalRequest
    from hfcls.recipe import load_recipe

    recipe, work = trained_digits
    out, checks = export_onnx(work / "best", tmp_path / "digits.onnx", limit=64)  # static batch 1, eval split
    check = checks.onnx
    assert check.passed and check.images == 64 and check.accuracy_torch == check.accuracy_onnx
    assert inspect_artifact(out).kind == "onnx"
    options = dict(metrics=["accuracy"], metric_options={"topk": [1]})
    torch_metrics = evaluate_checkpoint(EvalRequest(load_recipe(recipe), work / "best", **options)).metrics
    onnx_metrics = evaluate_checkpoint(EvalRequest(load_recipe(recipe), out, **options)).metrics
    assert onnx_metrics == pytest.approx(torch_metrics)
    assert torch_metrics["accuracy_top1"] > 50


def test_fp16_graph_within_its_tolerance(trained_digits, tmp_path):
    recipe, work = trained_digits
    out, checks = export_onnx(work / "best", tmp_path / "half.onnx", fp16=True, dynamic_batch=True, limit=32)
    check = checks.onnx
    assert check.passed and 0 < check.max_abs_delta <= check.bound
    assert OnnxClassifier(out, None).input_dtype == torch.float16


def test_what_needs_weights_refuses_a_graph(trained_digits, tmp_path):
    recipe, work = trained_digits
    out, _ = export_onnx(work / "best", tmp_path / "g.onnx", limit=8, dynamic_batch=True)
    with pytest.raises(HfclsError, match="ONNX graph, not PyTorch weights"):
        publish(out, tmp_path / "release")
    with pytest.raises(HfclsError, match="g.onnx is a file already; nothing was written: .*--overwrite"):
        export_onnx(work / "best", out, limit=8)


def test_an_opset_out_of_range_names_it(trained_digits, tmp_path):
    recipe, work = trained_digits
    with pytest.raises(HfclsError, match="^opset 99: onnx .* knows opsets 7 to"):
        export_onnx(work / "best", tmp_path / "x.onnx", opset=99, limit=4)
    assert not (tmp_path / "x.onnx").exists()


class _Unexportable(torch.nn.Module):
    """A model whose forward uses an op without an ONNX form in torch's exporter (histc)."""

    config = AutoConfig.for_model("resnet")

    def forward(self, pixel_values):
        class Out:
            logits = torch.histc(pixel_values, bins=3).view(1, 3)

        return Out()


def test_an_op_that_cannot_export_names_op_and_model_type():
    with pytest.raises(HfclsError) as caught:
        export_graph(_Unexportable(), torch.randn(1, 3, 4, 4), 18, False, False)
    message = str(caught.value)
    assert message.startswith("cannot export resnet to ONNX at opset 18") and "\n" not in message
    assert "histc" in message


def test_export_failure_names_the_aten_op():
    cause = RuntimeError("Exception summary\n\n<class 'RuntimeError'>: no decomposition for aten::histc.default")
    error = RuntimeError("export failed")
    error.__cause__ = cause
    assert "aten::histc" in _export_failure(error)
