"""A model's FLOPs and parameters (hfcls-flops).

Counted with `torch.utils.flop_counter.FlopCounterMode` on one image, model in
eval mode. It counts matrix multiplications and convolutions (the work that
matters; not norms, activations, pooling) at 2 FLOPs per multiply-accumulate,
attention included: the fused attention kernel that transformers' SDPA runs on
a CPU has no formula in torch, so it gets the one torch has for the GPU kernels
(the two batched matmuls, as eager attention counts them).
MMClassification's tool reports multiply-accumulates and calls them FLOPs
("4.12 GFLOPs" for ResNet-50, norms and activations included; 4.09 G here);
both figures are printed, named plainly.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from hfcls.errors import HfclsError
from hfcls.models import build_model

RULE = "=" * 60


def eval_input_size(data) -> tuple:
    """(H, W) of the images the eval pipeline produces: its last Resize/CenterCrop size."""
    for spec in reversed(data.eval_pipeline):
        if spec.get("type") in ("CenterCrop", "Resize") and "size" in spec:
            size = spec["size"]
            if isinstance(size, int) or len(size) == 1:
                side = size if isinstance(size, int) else size[0]
                return side, side
            return tuple(size)
    raise HfclsError("data.eval_pipeline has no Resize/CenterCrop size to take the input shape from; pass --shape H W")


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _missing_formulas() -> dict:
    """Formulas for kernels torch's counter leaves at 0."""
    cpu_attention = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    return {cpu_attention: _cpu_attention_flops} if cpu_attention is not None else {}


def count_flops(model: torch.nn.Module, shape: tuple) -> FlopCounterMode:
    """Run one image of (C, H, W) `shape` through the model under the counter."""
    model.eval()
    counter = FlopCounterMode(display=False, custom_mapping=_missing_formulas())
    with torch.no_grad(), counter:
        model(pixel_values=torch.zeros(1, *shape))
    return counter


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def human(count: float) -> str:
    """4090000000 -> '4.09 G', 61706 -> '61.71 k'."""
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count:.0f}"


def summary(shape: tuple, flops: int, params: int) -> str:
    return "\n".join(
        [
            RULE,
            f"Input shape: {tuple(shape)}",
            f"FLOPs: {human(flops)}   (= {human(flops / 2)} multiply-accumulates; "
            "MMClassification prints the multiply-accumulates as GFLOPs)",
            f"Params: {human(params)}",
            RULE,
        ]
    )


def per_layer_table(model: torch.nn.Module, counter: FlopCounterMode, depth: int) -> str:
    """FLOPs and parameters of each module nested at most `depth` deep, in definition order."""
    total = counter.get_total_flops() or 1
    counts = counter.get_flop_counts()
    root = type(model).__name__
    rows = [f"{'module':<44} {'FLOPs':>10} {'share':>7} {'params':>10}"]
    for path, module in model.named_modules():
        ops = counts.get(f"{root}.{path}")
        if not path or ops is None or path.count(".") >= depth:
            continue
        flops = sum(ops.values())
        rows.append(f"{path:<44} {human(flops):>10} {100 * flops / total:>6.1f}% {human(count_params(module)):>10}")
    return "\n".join(rows)


def model_flops(recipe, shape: tuple | None = None, num_classes: int = 1000):
    """(model, (C, H, W), counter) for the recipe's model with a `num_classes` head, at the eval pipeline's
    size unless `shape` (H, W) is given."""
    height, width = shape or eval_input_size(recipe.data)
    if height < 1 or width < 1 or height * width > recipe.data.max_image_pixels:
        raise HfclsError(
            f"shape {height} {width}: give a height and width of at least 1 and at most "
            f"data.max_image_pixels ({recipe.data.max_image_pixels:,}) pixels in all",
            param="shape",
        )
    if num_classes < 1:
        raise HfclsError(f"num_classes must be at least 1, got {num_classes}", param="num_classes")
    model = build_model(recipe.model, [str(i) for i in range(num_classes)])
    shape = (getattr(model.config, "num_channels", 3), height, width)  # RGB unless the model says otherwise
    try:
        return model, shape, count_flops(model, shape)
    except RuntimeError as error:  # e.g. a kernel larger than what is left of a small input
        raise HfclsError(
            f"shape {height} {width}: the model cannot take this input ({str(error).splitlines()[0]})"
            "; give a larger shape",
            param="shape",
        ) from None
