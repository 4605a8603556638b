"""timm's models as transformers models: `TimmWrapperForImageClassification` (model_type timm_wrapper).

transformers 5 loads a `timm/<name>` Hub repo, or a folder in timm's Hub layout
(`timm.models.save_for_hf`: config.json with `architecture`, `model_args` and `pretrained_cfg`),
as a wrapper whose `timm_model` is the timm model itself. Three things differ from a native model:

- the head is sized through `model_args`, which timm's save_for_hf fills with the `num_classes`
  it was saved with: TimmWrapper passes the data's class count as num_classes too, and the two
  clash ("got multiple values for keyword argument 'num_classes'"), so hfcls drops the saved one;
- a config change (`model.config_overrides`, e.g. drop_path_rate) is a keyword of the timm model's
  constructor, kept in `model_args`;
- the head is `timm_model.get_classifier()` (there is no `classifier` attribute), and the
  preprocessing `transformers.pipeline` uses is config.json's `pretrained_cfg`
  (hfcls.artifacts.export writes it).
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

from hfcls.errors import HfclsError, did_you_mean

MODEL_TYPE = "timm_wrapper"
INSTALL_HINT = 'pip install "hfcls[timm]"'


def is_timm(model_or_config) -> bool:
    config = getattr(model_or_config, "config", model_or_config)
    return getattr(config, "model_type", None) == MODEL_TYPE


def require_timm(what: str):
    """The timm module, or one line naming `what` needs it and the extra that installs it."""
    try:
        import timm
    except ImportError:
        raise HfclsError(f"{what} needs timm, which is not installed; {INSTALL_HINT}") from None
    return timm


def timm_model_args(config, overrides: dict, where: str) -> dict:
    """The keywords the timm model is built with: the saved `model_args` less num_classes (the data
    sizes the head), then `overrides`, each checked against the model's constructor."""
    args = {key: value for key, value in (config.model_args or {}).items() if key != "num_classes"}
    if overrides:
        known = constructor_keywords(config.architecture, args, where)
        for key in overrides:
            if known is not None and key not in known:
                raise HfclsError(
                    f"model.config_overrides: {where} (timm's {config.architecture}) has no setting {key!r}"
                    f"{did_you_mean(key, known)}; its constructor takes {', '.join(known)}"
                )
    return {**args, **overrides}


def constructor_keywords(architecture: str, args: dict, where: str) -> list | None:
    """The keyword names the timm class of `architecture` takes (None: it takes any)."""
    parameters = inspect.signature(type(meta_model(architecture, args, where)).__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return [name for name in parameters if name != "self"]


def meta_model(architecture, args: dict, where: str):
    """timm's `architecture` built with the keywords `args` on the meta device, where no memory is
    filled; an architecture this timm lacks, or keywords its constructor refuses, is one line naming
    `where` (a model file's config.json, or the recipe key)."""
    import torch

    timm = require_timm(f"{where} (a timm model)")
    if not isinstance(architecture, str) or not timm.is_model(architecture):
        raise HfclsError(
            f"{where}: timm {timm.__version__} has no architecture {architecture!r}"
            f"{did_you_mean(architecture, timm.list_models())}; the file is damaged, or needs a newer timm "
            "(pip install -U timm)"
        )
    try:
        with torch.device("meta"):
            return timm.create_model(architecture, pretrained=False, **args)
    except (TypeError, ValueError, KeyError, AssertionError, RuntimeError) as error:
        raise HfclsError(
            f"{where}: timm's {architecture} cannot be built with model_args {args} "
            f"({str(error).splitlines()[0][:200]}); the file is damaged or was altered: export it again"
        ) from None


def check_label_names(config, config_file) -> None:
    """A timm config.json's label_names against its num_classes: transformers replaces names that do not
    fit with LABEL_0, LABEL_1, ..., so such a file would predict under invented names."""
    names = json.loads(Path(config_file).read_text()).get("label_names")
    if names is not None and len(names) != config.num_labels:
        raise HfclsError(
            f"{config_file}: its config declares num_classes {config.num_labels} but names {len(names)} classes "
            "(label_names); a model file names each of its outputs once: the file is damaged or was altered, "
            "export it again"
        )


def check_buildable(config, where: str) -> None:
    """A timm model file's architecture and model_args, built on the meta device before the real build.
    The saved num_classes leaves model_args (module docstring), so a folder in timm's own Hub layout loads."""
    if not isinstance(config.model_args or {}, dict):
        raise HfclsError(
            f"{where}: model_args {config.model_args!r} is not a mapping; the file is damaged: export it again"
        )
    config.model_args = timm_model_args(config, {}, where)
    meta_model(config.architecture, {**config.model_args, "num_classes": config.num_labels}, where)


def classifier_module(model):
    """The module that turns features into logits: `get_classifier()` of the timm model."""
    return model.timm_model.get_classifier()


def feature_layer(model) -> str:
    """The last feature map of the timm model (its feature_info), as a module name of the wrapper."""
    return f"timm_model.{model.timm_model.feature_info[-1]['module']}"


def prefix_tokens(model) -> int:
    """Tokens before the patches in a timm transformer's sequence ([CLS], registers, distillation)."""
    return getattr(model.timm_model, "num_prefix_tokens", 0)


def channels_last_output(model) -> bool:
    """Whether the timm model's feature maps are NHWC (Swin, ...) rather than NCHW."""
    fmt = getattr(model.timm_model, "output_fmt", "NCHW")
    return getattr(fmt, "value", fmt) == "NHWC"  # timm's Format enum, or a plain string


def layer_ids(model) -> dict:
    """timm's own layer ids for layer-wise LR decay ({parameter name: id}, the head last), from the
    model's `group_matcher(coarse=False)`, as timm's param_groups_layer_decay reads them."""
    from timm.models import group_parameters

    inner = model.timm_model
    if not hasattr(inner, "group_matcher"):
        return {}
    ids = group_parameters(inner, inner.group_matcher(coarse=False), reverse=True)
    return {f"timm_model.{name}": layer for name, layer in ids.items()}
