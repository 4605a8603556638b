"""hfcls's own architectures, registered with the transformers Auto classes.

Importing this package makes `model_type: cifar_resnet`, `lenet5` and `small_convnet`
work everywhere transformers looks models up: recipes (`model.config`),
`from_pretrained` on a saved folder, and `transformers.pipeline`. A model of
your own needs the same three steps: a `PreTrainedConfig` with a new
`model_type`, a `PreTrainedModel` whose forward returns `ImageClassifierOutput`,
and the two `register` calls below (see docs/tutorials/new_modules.md).

They are also registered for the Auto classes' remote code: `save_pretrained` copies
their module file beside config.json and writes `auto_map`, so a saved or pushed model
loads with transformers alone (`trust_remote_code=True`), without hfcls installed.
Within hfcls the registered classes above are used; no saved code runs.
"""

from transformers import AutoConfig, AutoModelForImageClassification

from hfcls.modeling.cifar_resnet import CifarResNetConfig, CifarResNetForImageClassification
from hfcls.modeling.lenet import LeNet5Config, LeNet5ForImageClassification
from hfcls.modeling.small_convnet import SmallConvNetConfig, SmallConvNetForImageClassification

CUSTOM_MODELS = {
    CifarResNetConfig: CifarResNetForImageClassification,
    LeNet5Config: LeNet5ForImageClassification,
    SmallConvNetConfig: SmallConvNetForImageClassification,
}

for _config, _model in CUSTOM_MODELS.items():
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModelForImageClassification.register(_config, _model, exist_ok=True)
    _config.register_for_auto_class()
    _model.register_for_auto_class("AutoModelForImageClassification")

__all__ = [
    "CifarResNetConfig",
    "CifarResNetForImageClassification",
    "LeNet5Config",
    "LeNet5ForImageClassification",
    "SmallConvNetConfig",
    "SmallConvNetForImageClassification",
]
