"""What a recipe changes on a built model before it trains: frozen parts, gradient checkpointing;
and what hfcls changes on every model it trains: ReLUs in place where that is known to be safe, and
on CPU, convolutions whose output is one pixel computed as the matrix product they are.

Frozen means frozen. Clearing `requires_grad` stops the weights, but a BatchNorm layer in train
mode still moves its running statistics with every batch, and a dropout layer still drops: a
linear probe's backbone would drift. So the modules made of frozen parameters stay in eval mode
whatever `model.train()` asks (MMPretrain's norm_eval, timm's
`freeze(include_bn_running_stats=True)`), unless optim.frozen_eval is false. They keep their
classes and their state-dict keys, so checkpoints and exports do not see the difference.
"""

from __future__ import annotations

import types

import torch

from hfcls.engine.optim import check_prefix
from hfcls.errors import HfclsError


def freeze(model: torch.nn.Module, optim) -> list:
    """Leave the parameters under optim.frozen's prefixes out of training; with optim.frozen_eval,
    hold the modules they make up in eval mode. Returns those modules' names."""
    prefixes = tuple(optim.frozen)
    names = [name for name, _ in model.named_parameters()]
    for prefix in prefixes:
        check_prefix(prefix, names, "optim.frozen")
    for name, param in model.named_parameters():
        if name.startswith(prefixes):
            param.requires_grad_(False)
    if not prefixes or not optim.frozen_eval:
        return []
    held = frozen_modules(model, prefixes)
    for module in held.values():
        module.train = types.MethodType(_train_in_eval_mode, module)
        module.eval()
    return list(held)


def frozen_modules(model: torch.nn.Module, prefixes: tuple) -> dict:
    """{name: module} of the outermost modules whose whole name lies under a frozen prefix."""
    held: dict = {}
    for name, module in model.named_modules():
        inside = name and (name + ".").startswith(prefixes)
        if inside and not any(name.startswith(outer + ".") for outer in held):
            held[name] = module
    return held


def _train_in_eval_mode(self, mode: bool = True):
    """A frozen module's `train`: eval mode for it and all it holds, whatever `mode` asks."""
    return torch.nn.Module.train(self, False)


def enable_gradient_checkpointing(model) -> None:
    """train.gradient_checkpointing: recompute activations in the backward pass (non-reentrant
    checkpoints, which also pass gradients through blocks whose inputs need none, as after a frozen stem)."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        name = getattr(model.config, "architecture", model.config.model_type)  # a timm model's own name
        raise HfclsError(
            f"train.gradient_checkpointing: {name} ({type(model).__name__}) cannot recompute its "
            "activations; set train.gradient_checkpointing=false (lower data.batch_size to save memory)"
        )
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


# Architectures whose every ReLU module may overwrite its input: in their modeling code nothing reads
# that input after the ReLU (a BatchNorm's output, or a residual sum made for it), and BatchNorm's
# backward needs its own input, not its output. timm builds its ReLUs in place already; transformers'
# ResNet builds them out of place, a tensor more written and read per activation: its fp32 training
# step at 224 px ran 1.4-3.5 % slower than timm's on the same layers (benchmarks/README.md).
# tests/engine/test_adapt.py checks outputs and gradients unchanged, per layer type.
RELU_IN_PLACE = ("resnet",)


def relu_in_place(model: torch.nn.Module) -> int:
    """Make the ReLU modules of a model in RELU_IN_PLACE run in place; returns how many. Any other
    model is left as built: in place is safe only where nothing reads the ReLU's input afterwards,
    and a module cannot tell that of its caller's code."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in RELU_IN_PLACE:
        return 0
    relus = [module for module in model.modules() if type(module) is torch.nn.ReLU]
    for relu in relus:
        relu.inplace = True
    return len(relus)


class OnePixelConv2d(torch.nn.Conv2d):
    """A Conv2d that computes an output of one pixel as the matrix product it is: the in-bounds part of
    the input window times the kernel taps over it. The taps over padding multiply zeros and are
    skipped, so their gradients are zero as in the convolution. Any other output is the convolution.

    Why: at 32 px a ResNet's last stage runs on a 1x1 map, and oneDNN's backward of a 3x3 convolution
    there took 7.4 ms against well under 1 ms for the product of the same numbers, a fifth of the whole
    training step on CPU (benchmarks/README.md)."""

    def _conv_forward(self, x, weight, bias):
        window = self._one_pixel_window(x)
        if window is None:
            return super()._conv_forward(x, weight, bias)
        rows, cols = window
        (top, left) = self.padding
        seen, taps = x[:, :, :rows, :cols], weight
        if not weight.is_contiguous():  # channels_last: taps in the order they are stored, so that the
            # gradient comes back in the parameter's own layout instead of being copied into it every step
            seen, taps = seen.permute(0, 2, 3, 1), taps.permute(0, 2, 3, 1)
            taps = taps[:, top : top + rows, left : left + cols]
        else:
            taps = taps[:, :, top : top + rows, left : left + cols]
        out = torch.nn.functional.linear(seen.flatten(1), taps.flatten(1), bias)
        return out[:, :, None, None]

    def _one_pixel_window(self, x) -> tuple[int, int] | None:
        """(rows, cols) of the input that the single output pixel sees, or None where the output is
        larger (or the input is unbatched)."""
        if x.dim() != 4:
            return None
        window = []
        for size, kernel, stride, pad in zip(x.shape[-2:], self.kernel_size, self.stride, self.padding, strict=True):
            if not 0 <= size + 2 * pad - kernel < stride or kernel <= pad:
                return None
            window.append(min(size, kernel - pad))
        return tuple(window)


def one_pixel_convs(model: torch.nn.Module) -> int:
    """Make the plain Conv2d modules of a model OnePixelConv2d (the class only: the same parameters,
    state-dict keys and results); returns how many. Grouped, dilated, non-zero-padded and
    string-padded convolutions are left as built."""
    convs = [
        module
        for module in model.modules()
        if type(module) is torch.nn.Conv2d
        and module.groups == 1
        and module.dilation == (1, 1)
        and module.padding_mode == "zeros"
        and isinstance(module.padding, tuple)
    ]
    for conv in convs:
        conv.__class__ = OnePixelConv2d
    return len(convs)
