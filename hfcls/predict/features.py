"""Embeddings: the pooled features a classifier's head reads (the input of `model.classifier`),
for every hfcls and transformers image classifier. For ResNet, ConvNeXt, RegNet, MobileNetV2,
EfficientNet and Swin that is the pooled last stage; for ViT and DeiT the final [CLS] token;
for cifar_resnet the pooled last stage and for lenet5 the 120 convolution features. A timm
model's head is its `get_classifier()`, whose input is the pre-logits of its `forward_head`
(`forward_head(x, pre_logits=True)`: pooled, normed, before the last linear layer).

They are read by a forward pre-hook on the head during the pass that computes the scores, so
features cost no second pass over the data.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from hfcls.errors import HfclsError
from hfcls.timm_models import classifier_module, is_timm


def classifier_head(model) -> torch.nn.Module:
    head = classifier_module(model) if is_timm(model) else getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Module):
        raise HfclsError(
            f"{model.config.model_type}: no `classifier` head module whose input could be read "
            "as features (an ONNX graph has none: pass the PyTorch checkpoint it came from)"
        )
    return head


@contextmanager
def head_inputs(model):
    """A list that receives what the model's head is given in each forward pass inside the block."""
    seen = []
    hook = classifier_head(model).register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    try:
        yield seen
    finally:
        hook.remove()
