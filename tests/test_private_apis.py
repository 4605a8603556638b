"""The private APIs of dependencies that hfcls uses, each in one place because no public one serves.

These fail loudly, naming the place, when a dependency renames or drops one.
"""

import inspect

import evaluate
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState


def test_evaluate_metric_compute_on_arrays():
    # hfcls.metrics._compute: Metric.compute() would copy every score through Arrow first.
    parameters = inspect.signature(evaluate.Metric._compute).parameters
    assert "predictions" in parameters and "references" in parameters


def test_accelerator_optimizers_list():
    # hfcls.artifacts.resume.load_state_without_optimizer: load_state has no switch to skip optimizers.
    accelerator = Accelerator(cpu=True)
    try:
        assert accelerator._optimizers == []
        optimizer = accelerator.prepare(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=0.1))
        assert len(accelerator._optimizers) == 1 and accelerator._optimizers[0] is optimizer
    finally:
        accelerator.end_training()
        AcceleratorState._reset_state(reset_partial_state=True)


def test_accelerator_state_reset():
    # hfcls.engine.setup.accelerator_session: Accelerate keeps one state per process.
    assert "reset_partial_state" in inspect.signature(AcceleratorState._reset_state).parameters


def test_torch_cpu_bf16_probes():
    # hfcls.engine.precision.cpu_has_bf16: torch has no public probe for bf16 instructions.
    assert isinstance(torch.cpu._is_avx512_bf16_supported(), bool)
    assert isinstance(torch.cpu._is_amx_tile_supported(), bool)


def test_v2_flips_draw_one_uniform_number_first():
    # hfcls.data.on_device draws each sample's flip in a worker as v2's _RandomApplyTransform.forward
    # does (flip when torch.rand(1) < p), to apply it on the device later.
    from torchvision.transforms import v2

    image = torch.arange(6, dtype=torch.uint8).view(1, 2, 3)
    for seed in range(20):
        torch.manual_seed(seed)
        flipped = not torch.equal(v2.RandomHorizontalFlip(p=0.3)(image), image)
        torch.manual_seed(seed)
        assert flipped == bool(torch.rand(1) < 0.3)
