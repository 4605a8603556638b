"""The input adapter: normalisation as torchvision computes it, the memory format, the precision rule of
Accelerate, the same inputs from a recipe and from its export, and `Normalize` built in one place."""

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torchvision.transforms import v2

from hfcls.artifacts.export import image_processor
from hfcls.predict.inputs import ModelInputs, Normalize, autocast_dtype, exported_inputs, recipe_inputs
from hfcls.recipe.schema import DataSection

PACKAGE = Path(__file__).resolve().parents[2] / "hfcls"


def test_normalize_matches_torchvision():
    images = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    expected = v2.Normalize(mean, std)(images.float() / 255)
    torch.testing.assert_close(Normalize(mean, std)(images), expected)


@pytest.mark.parametrize(
    "mixed_precision, device_type, dtype",
    [
        ("bf16", "cpu", torch.bfloat16),
        ("bf16", "cuda", torch.bfloat16),
        ("fp16", "cuda", torch.float16),
        ("fp16", "cpu", None),  # Accelerate runs fp16 on a CPU in fp32
        ("no", "cuda", None),
        ("no", "cpu", None),
    ],
)
def test_the_precision_rule_is_accelerates(mixed_precision, device_type, dtype):
    assert autocast_dtype(mixed_precision, device_type) == dtype


def test_channels_last_inputs_and_model():
    inputs = ModelInputs([0.5] * 3, [0.5] * 3, "cpu", channels_last=True, mixed_precision="bf16")
    images = inputs(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    assert images.is_contiguous(memory_format=torch.channels_last) and images.dtype == torch.float32
    conv = inputs.place(torch.nn.Conv2d(3, 4, 3))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    with inputs.autocast():
        assert conv(images).dtype == torch.bfloat16
    with ModelInputs([0.5] * 3, [0.5] * 3).autocast():
        assert conv(images).dtype == torch.float32


def test_an_export_gives_the_inputs_its_recipe_gives():
    data = DataSection(
        eval_pipeline=[{"type": "Resize", "size": 20}, {"type": "CenterCrop", "size": 16}],
        mean=[0.5, 0.4, 0.3],
        std=[0.2, 0.25, 0.3],
    )
    train = SimpleNamespace(channels_last=True, mixed_precision="bf16")
    ours = recipe_inputs(SimpleNamespace(data=data, train=train), "cpu")
    transform, exported = exported_inputs(
        image_processor(data).to_dict(), "test", "cpu", channels_last=True, mixed_precision="bf16"
    )
    pixels = transform(torch.randint(0, 256, (3, 37, 23), dtype=torch.uint8))[None]
    assert pixels.shape == (1, 3, 16, 16)
    assert torch.equal(ours(pixels), exported(pixels)) and ours.autocast_dtype == exported.autocast_dtype


def hfcls_normalize_calls(path: Path) -> int:
    """How many times `path` builds hfcls's Normalize (torchvision's, as the benchmark harnesses build
    it, is another class): by the name it is defined or imported under, or through an hfcls module."""
    tree = ast.parse(path.read_text())
    classes, modules = set(), set()  # the names that mean hfcls's Normalize, and an hfcls module
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "Normalize":
            classes.add(node.name)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "hfcls":
            for alias in node.names:
                (classes if alias.name == "Normalize" else modules).add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules |= {
                alias.asname or alias.name.split(".")[0] for alias in node.names if alias.name.split(".")[0] == "hfcls"
            }

    def builds_it(call) -> bool:
        if isinstance(call.func, ast.Name):
            return call.func.id in classes
        return (
            isinstance(call.func, ast.Attribute)
            and call.func.attr == "Normalize"
            and ast.unparse(call.func.value).split(".")[0] in modules
        )

    return sum(builds_it(node) for node in ast.walk(tree) if isinstance(node, ast.Call))


def test_normalize_is_built_in_one_place():
    calls = {
        str(path.relative_to(PACKAGE)): count
        for path in sorted(PACKAGE.rglob("*.py"))
        if (count := hfcls_normalize_calls(path))
    }
    assert calls == {"predict/inputs.py": 1}


def test_the_count_sees_each_way_of_building_it(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "from hfcls.predict.inputs import Normalize as N\nimport hfcls.predict.inputs as inputs\n"
        "import hfcls.predict.inputs\nfrom hfcls.predict import inputs as adapter\n"
        "from torchvision.transforms import v2, Normalize as TorchvisionNormalize\n"
        "a = N([0], [1])\nb = inputs.Normalize([0], [1])\nc = hfcls.predict.inputs.Normalize([0], [1])\n"
        "d = adapter.Normalize([0], [1])\ne = v2.Normalize([0], [1])\n"
        "f = TorchvisionNormalize([0], [1])\n"
    )
    assert hfcls_normalize_calls(source) == 4
