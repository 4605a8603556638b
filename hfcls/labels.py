"""Problem types and label maps: what a classifier's labels mean, with no torch or transformers.

A model is single-label (one class per image, softmax scores) or multi-label (any number of
classes per image, one sigmoid per class); its config's `problem_type` says which, as
transformers reads it. The data layer, evaluation and the commands' flag parsing need these
names without importing a model library.
"""

from __future__ import annotations

SINGLE_LABEL = "single_label_classification"
MULTI_LABEL = "multi_label_classification"
PROBLEM_TYPES = (SINGLE_LABEL, MULTI_LABEL)


def label_maps(class_names: list, problem_type: str = SINGLE_LABEL) -> dict:
    """The config keys that name a model's classes (and its problem type when multi-label)."""
    maps = {
        "num_labels": len(class_names),
        "id2label": {i: str(name) for i, name in enumerate(class_names)},
        "label2id": {str(name): i for i, name in enumerate(class_names)},
    }
    if problem_type == MULTI_LABEL:  # single-label configs stay as they were (transformers' default)
        maps["problem_type"] = MULTI_LABEL
    return maps


def check_label_maps(config, where: str) -> None:
    """A config's classes: id2label names exactly the ids 0..num_labels-1, so that every output of the
    head has a name and every name an output. What a model file declares is checked before use."""
    from hfcls.errors import HfclsError

    ids = sorted(getattr(config, "id2label", None) or {})
    if config.num_labels < 1 or ids != list(range(config.num_labels)):
        raise HfclsError(
            f"{where}: its config declares num_labels {config.num_labels} but names the classes "
            f"{ids[:5]}{'...' if len(ids) > 5 else ''} (id2label); a model file names each of its "
            "outputs once: the file is damaged or was altered, export it again"
        )


def class_names_of(model) -> list:
    """The class names a model's config gives, in class-id order."""
    return [model.config.id2label[i] for i in range(model.config.num_labels)]


def problem_type_of_model(model) -> str:
    """A model's problem type: multi-label only when its config says so, as transformers reads it."""
    return MULTI_LABEL if getattr(model.config, "problem_type", None) == MULTI_LABEL else SINGLE_LABEL
