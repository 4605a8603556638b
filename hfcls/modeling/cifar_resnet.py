"""ResNet in the CIFAR form (He et al., 2016, as MMClassification's ResNet_CIFAR):
a 3x3 stride-1 stem and no max-pool, so 32x32 images keep their resolution into
the first stage; basic blocks; global average pooling and a linear head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput


class CifarResNetConfig(PreTrainedConfig):
    model_type = "cifar_resnet"

    num_channels: int = 3
    stem_channels: int = 64
    hidden_sizes: list[int] | tuple[int, ...] = (64, 128, 256, 512)  # per stage
    depths: list[int] | tuple[int, ...] = (2, 2, 2, 2)  # basic blocks per stage: ResNet-18


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int) -> nn.Sequential:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn(in_channels, out_channels, 3, stride)
        self.conv2 = conv_bn(out_channels, out_channels, 3, 1)
        changes_shape = stride != 1 or in_channels != out_channels
        self.shortcut = conv_bn(in_channels, out_channels, 1, stride) if changes_shape else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.shortcut(x))


class CifarResNetForImageClassification(PreTrainedModel):
    config_class = CifarResNetConfig
    base_model_prefix = "resnet"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: CifarResNetConfig):
        super().__init__(config)
        self.stem = nn.Sequential(conv_bn(config.num_channels, config.stem_channels, 3, 1), nn.ReLU())
        blocks, channels = [], config.stem_channels
        for stage, (width, depth) in enumerate(zip(config.hidden_sizes, config.depths)):
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(channels, width, stride))
                channels = width
        self.stages = nn.Sequential(*blocks)
        self.classifier = nn.Linear(channels, config.num_labels)
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            module.reset_parameters()

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs
    ) -> ImageClassifierOutput:
        features = self.stages(self.stem(pixel_values))
        logits = self.classifier(features.mean(dim=(2, 3)))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)
