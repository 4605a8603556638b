"""Embeddings: the pooled features a classifier's head reads (the input of `model.classifier`),
for every hfcls and transformers image classifier. For ResNet, ConvNeXt, RegNet, MobileNetV2,
EfficientNet and Swin that is the pooled last stage; for ViT and DeiT the final [CLS] token;
for cifar_resnet the pooled last stage and for lenet5 the 120 convolution features.
"""

from __future__ import annotations

import torch
from transformers.modeling_outputs import ImageClassifierOutput

from hfcls.errors import HfclsError


class PenultimateFeatures(torch.nn.Module):
    """The model answering the call `predict` makes, its `logits` replaced by the features its head
    reads: evaluation gathers them over processes as it gathers logits."""

    def __init__(self, model):
        super().__init__()
        head = getattr(model, "classifier", None)
        if not isinstance(head, torch.nn.Module):
            raise HfclsError(f"{model.config.model_type}: no `classifier` head module whose input could be read "
                             "as features (an ONNX graph has none: pass the PyTorch checkpoint it came from)")
        self.model, self.head, self.config = model, head, model.config

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> ImageClassifierOutput:
        seen = []
        hook = self.head.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
        try:
            self.model(pixel_values=pixel_values)
        finally:
            hook.remove()
        return ImageClassifierOutput(logits=seen[0].flatten(1).float())
