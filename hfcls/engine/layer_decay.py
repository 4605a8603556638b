"""Layer-wise LR decay (optim.layer_decay): the layer id of every parameter, by one matcher per family.

As BEiT defined it and MMPretrain and timm apply it, a parameter of layer i trains at
lr x decay^(L - i): the embeddings (stem) are layer 0, the blocks follow in the order the input
meets them, and whatever comes after the last block (final norm, pooler, head) is layer L. The
layers closest to the input, which hold the most general features, move least.

A native family's layers are named by LAYER_PATTERNS; a timm model's by its own
`group_matcher(coarse=False)`, as timm's param_groups_layer_decay reads it (hfcls.timm_models).
"""

from __future__ import annotations

import math
import re

from hfcls.errors import HfclsError
from hfcls.timm_models import is_timm
from hfcls.timm_models import layer_ids as timm_layer_ids

# model_type -> (pattern, suffix) per kind of layer. A parameter takes the first pattern its name
# starts with; the numbers the pattern captures, then the suffix, order the layers (stage, block):
# () for the embeddings sorts before any numbered block. A name no pattern takes is layer L.
BEFORE_BLOCKS, AFTER_BLOCKS = (-1,), (math.inf,)
STAGES = r"encoder\.stages\.(\d+)\.layers\.(\d+)\."
LAYER_PATTERNS = {
    "vit": ((r"vit\.embeddings\.", ()), (r"vit\.layers\.(\d+)\.", ())),
    "deit": ((r"deit\.embeddings\.", ()), (r"deit\.layers\.(\d+)\.", ())),
    "swin": (
        (r"swin\.embeddings\.", ()),
        (r"swin\.encoder\.layers\.(\d+)\.blocks\.(\d+)\.", ()),
        (r"swin\.encoder\.layers\.(\d+)\.downsample\.", AFTER_BLOCKS),  # patch merging ends its stage
    ),
    "convnext": (
        (r"convnext\.embeddings\.", ()),
        (r"convnext\.encoder\.stages\.(\d+)\.downsampling_layer\.", BEFORE_BLOCKS),  # opens its stage
        (rf"convnext\.{STAGES}", ()),
    ),
    "resnet": ((r"resnet\.embedder\.", ()), (rf"resnet\.{STAGES}", ())),
    "regnet": ((r"regnet\.embedder\.", ()), (rf"regnet\.{STAGES}", ())),
    "efficientnet": ((r"efficientnet\.embeddings\.", ()), (r"efficientnet\.encoder\.blocks\.(\d+)\.", ())),
    "mobilenet_v1": ((r"mobilenet_v1\.conv_stem\.", ()), (r"mobilenet_v1\.layer\.(\d+)\.", ())),
    "mobilenet_v2": ((r"mobilenet_v2\.conv_stem\.", ()), (r"mobilenet_v2\.layer\.(\d+)\.", ())),
}


def layer_ids(model) -> tuple[dict, int]:
    """({parameter name: layer id}, L): every parameter's layer, the head's being L."""
    if is_timm(model):
        ids = timm_layer_ids(model)
        if ids:
            return ids, max(ids.values())
    patterns = LAYER_PATTERNS.get(model.config.model_type)
    if patterns is None:
        known = ", ".join(sorted(LAYER_PATTERNS))
        name = getattr(model.config, "architecture", model.config.model_type)  # a timm model's own name
        raise HfclsError(
            f"optim.layer_decay: hfcls knows no layers of {name} (it has rules for "
            f"{known} and timm models with a group_matcher); set optim.layer_decay=null, or give parts "
            "of the backbone their own LR with optim.lr_mult"
        )
    order = {name: _position(name, patterns) for name, _ in model.named_parameters()}
    blocks = sorted({position for position in order.values() if position is not None})
    last = len(blocks)  # the layer after every block: the head
    return {name: last if position is None else blocks.index(position) for name, position in order.items()}, last


def _position(name: str, patterns) -> tuple | None:
    for pattern, suffix in patterns:
        match = re.match(pattern, name)
        if match:
            return (*(int(number) for number in match.groups()), *suffix)
    return None


def layer_scales(model, decay: float) -> dict:
    """{parameter name: decay^(L - layer id)}."""
    ids, last = layer_ids(model)
    return {name: decay ** (last - layer) for name, layer in ids.items()}
