"""LeNet-5 (LeCun et al., 1998) as MMClassification builds it: tanh, average pooling,
a 5x5 convolution down to 120 features on a 32x32 input, then 84 -> classes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput


class LeNet5Config(PreTrainedConfig):
    model_type = "lenet5"

    num_channels: int = 1  # 1 for grayscale input; 3 when the data is read as RGB


class LeNet5ForImageClassification(PreTrainedModel):
    config_class = LeNet5Config
    base_model_prefix = "lenet"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: LeNet5Config):
        super().__init__(config)
        self.features = nn.Sequential(
            nn.Conv2d(config.num_channels, 6, kernel_size=5),
            nn.Tanh(),
            nn.AvgPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.Tanh(),
            nn.AvgPool2d(2),
            nn.Conv2d(16, 120, kernel_size=5),
            nn.Tanh(),
        )
        self.classifier = nn.Sequential(nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, config.num_labels))
        self.post_init()

    def _init_weights(self, module):
        # PyTorch's own layer defaults, which LeNet-5 recipes are tuned for.
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.reset_parameters()

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, **kwargs
    ) -> ImageClassifierOutput:
        features = self.features(pixel_values)
        # 32x32 input leaves 1x1; pooling lets other sizes through with the same head.
        logits = self.classifier(F.adaptive_avg_pool2d(features, 1).flatten(1))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)
