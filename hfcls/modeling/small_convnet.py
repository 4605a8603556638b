"""A fast plain convolutional net for 28-32 px images, in the spirit of cifar10-airbench's:
no residuals; a 3x3 stem, then per stage a 3x3 convolution, a 2x2 max-pool, and a second
3x3 convolution at the pooled size (BatchNorm + GELU after each); global max-pooling and a
bias-free linear head whose logits are scaled down (`logit_scale`).

Pooling straight after each stage's first convolution is what makes it cheap: of a 32x32
input only the stem and one convolution run at full size, where a CIFAR ResNet runs its
whole first stage. The small logit scale keeps early softmax outputs soft, so a high
learning rate does not saturate them in the first steps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput


class SmallConvNetConfig(PreTrainedConfig):
    model_type = "small_convnet"

    num_channels: int = 3
    # The recipes' size (75,280 parameters with 10 classes); a wider one (24, [32, 64, 128]: 295 k)
    # trains at half its images/s on a CPU core (benchmarks/README.md, small-image recipes).
    stem_channels: int = 16
    hidden_sizes: list[int] | tuple[int, ...] = (16, 32, 64)  # per stage; each stage halves the size
    logit_scale: float = 0.125


def conv_bn_gelu(in_channels: int, out_channels: int, pool: bool) -> nn.Sequential:
    layers = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)]
    if pool:  # pooled before the norm: BatchNorm and GELU then run on a quarter of the pixels
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, nn.BatchNorm2d(out_channels), nn.GELU())


class SmallConvNetForImageClassification(PreTrainedModel):
    config_class = SmallConvNetConfig
    base_model_prefix = "convnet"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: SmallConvNetConfig):
        super().__init__(config)
        layers, channels = [conv_bn_gelu(config.num_channels, config.stem_channels, pool=False)], config.stem_channels
        for width in config.hidden_sizes:
            layers += [conv_bn_gelu(channels, width, pool=True), conv_bn_gelu(width, width, pool=False)]
            channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels, config.num_labels, bias=False)
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
        features = self.features(pixel_values).amax(dim=(2, 3))
        logits = self.classifier(features) * self.config.logit_scale
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)
