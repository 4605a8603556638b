"""Knowledge distillation (`train.distill`): a teacher's logits as a second target for the student.

    soft (Hinton et al. 2015)   loss = (1 - alpha) * data loss + alpha * T^2 * KL(softmax(t / T) || softmax(s / T))
    hard: true (DeiT)           loss = (1 - alpha) * data loss + alpha * cross-entropy(s, argmax t)

with s the student's logits, t the teacher's and T the temperature; the T^2 keeps the soft term's gradients
on the scale of the data loss's whatever T is. Each term is a mean over the batch's valid images.

The teacher is read once, by the artifact reader (a best/ folder, a checkpoint, a published file, a Hub
id), and wrapped once: eval mode, no gradients, on the training device, under the run's autocast. Each step
it sees the very batch the student sees, augmented (MixUp and CutMix included), normalised as the teacher
was trained (its own preprocessor's mean and std). Its logits are computed in the step and never kept:
a checkpoint holds no teacher, and a resumed run computes them again from the same restored batches.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from hfcls.artifacts.loading import load_reference_model
from hfcls.errors import HfclsError
from hfcls.labels import MULTI_LABEL, class_names_of, problem_type_of_model
from hfcls.predict.inputs import ModelInputs

logger = logging.getLogger(__name__)


class Teacher:
    """`loss(data_loss, student_logits, pixels, valid)`: the data loss blended with the teacher's term."""

    def __init__(self, model, inputs: ModelInputs, settings: dict, order: list | None = None):
        self.model = inputs.place(model).eval().requires_grad_(False)
        self.inputs, self.order = inputs, order
        self.alpha, self.temperature, self.hard = settings["alpha"], settings["temperature"], settings["hard"]

    @torch.no_grad()
    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """The teacher's logits for a batch, in the student's class order."""
        with self.inputs.autocast():
            logits = self.model(pixel_values=self.inputs(pixels)).logits.float()
        return logits if self.order is None else logits[:, self.order]

    def loss(self, data_loss: torch.Tensor, student: torch.Tensor, pixels: torch.Tensor, valid) -> torch.Tensor:
        teacher, student = self.logits(pixels), student.float()
        if self.hard:
            per_image = F.cross_entropy(student, teacher.argmax(dim=1), reduction="none")
        else:
            t = self.temperature
            log_student, log_teacher = F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1)
            per_image = F.kl_div(log_student, log_teacher, reduction="none", log_target=True).sum(dim=1) * t * t
        term = (per_image * valid).sum() / valid.sum().clamp(min=1)
        return (1 - self.alpha) * data_loss + self.alpha * term


def build_teacher(settings: dict, class_names: list, problem_type: str, recipe, device) -> Teacher:
    """train.distill's teacher (its finished settings), read and checked against the data's classes."""
    if problem_type == MULTI_LABEL:
        raise HfclsError(
            "train.distill distils a softmax over one class per image, but the data is multi-label "
            "(lists of classes); set train.distill=null"
        )
    model, processor = load_reference_model(settings["teacher"], "train.distill.teacher")
    if problem_type_of_model(model) == MULTI_LABEL:
        raise HfclsError(
            f"train.distill.teacher {settings['teacher']} is a multi-label model; distil from a single-label one"
        )
    order = class_order(class_names_of(model), class_names, settings["teacher"])
    mean, std = normalisation(processor, settings["teacher"])
    inputs = ModelInputs(
        mean,
        std,
        device,
        channels_last=recipe.train.channels_last,
        mixed_precision=recipe.train.mixed_precision,
    )
    logger.info(
        "distilling from %s (%s, %s parameters): %s, alpha %g",
        settings["teacher"],
        model.config.model_type,
        f"{sum(p.numel() for p in model.parameters()):,}",
        "hard labels" if settings["hard"] else f"soft targets at temperature {settings['temperature']:g}",
        settings["alpha"],
    )
    return Teacher(model, inputs, settings, order)


def class_order(teacher_names: list, names: list, teacher: str) -> list | None:
    """Where each of the data's classes sits among the teacher's outputs (None: the same order)."""
    if teacher_names == names:
        return None
    if sorted(teacher_names) != sorted(names):
        raise HfclsError(
            f"train.distill.teacher {teacher} predicts the classes {shown(teacher_names)}, but the data has "
            f"{shown(names)}; distil from a teacher trained on the data's classes"
        )
    return [teacher_names.index(name) for name in names]


def shown(names: list, most: int = 20) -> str:
    listed = ", ".join(map(str, names[:most]))
    return f"[{listed}{', ...' if len(names) > most else ''}] ({len(names)})"


def normalisation(processor, teacher: str) -> tuple:
    """The mean and std the teacher's inputs were normalised with: its image processor's (a timm model's
    data config), or 0 and 1 when it does not normalise."""
    data_config = getattr(processor, "data_config", None)  # transformers' TimmWrapperImageProcessor
    if data_config is not None:
        return list(data_config["mean"]), list(data_config["std"])
    if getattr(processor, "do_normalize", None) is False:
        return [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    if getattr(processor, "image_mean", None) is None or getattr(processor, "image_std", None) is None:
        raise HfclsError(
            f"train.distill.teacher {teacher}: its image processor ({type(processor).__name__}) does not say "
            "how its inputs were normalised (image_mean, image_std); export the teacher with hfcls or "
            "save_pretrained a processor that does"
        )
    return list(processor.image_mean), list(processor.image_std)
