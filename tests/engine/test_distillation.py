"""Knowledge distillation (train.distill): the soft and hard terms against their formulas, a teacher that sees
the student's augmented batch in its own normalisation, frozen and in eval mode, read from any artifact; a
teacher of other classes or one that cannot be read refused in one line; exact resume."""

import math
import shutil
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
import yaml

from hfcls.api import train
from hfcls.engine.distillation import Teacher, class_order, normalisation
from hfcls.engine.steps import train_step
from hfcls.errors import HfclsError
from hfcls.predict.inputs import ModelInputs
from hfcls.recipe import load_recipe

from commands import run_two_processes, user_error
from conftest import (
    TINY_VIT,
    built_run,
    deterministic_rows,
    make_image_folder,
    max_difference,
    tiny_recipe_dict,
    weights,
    write_recipe,
)

pytestmark = pytest.mark.xdist_group("distillation")  # one worker trains the students of the module


class FixedLogits(torch.nn.Module):
    """A teacher whose logits are given; it records the pixels it is shown and whether it was in training mode."""

    def __init__(self, logits):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))  # a parameter, to see it gets no gradient
        self.fixed, self.seen = logits, []

    def forward(self, pixel_values):
        self.seen.append((pixel_values, self.training, torch.is_grad_enabled()))
        return SimpleNamespace(logits=self.fixed * self.weight)


def teacher(logits, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), **settings):
    settings = {"alpha": 0.5, "temperature": 4.0, "hard": False, **settings}
    return Teacher(FixedLogits(logits), ModelInputs(list(mean), list(std)), settings)


STUDENT = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 3.0, 0.0]], requires_grad=True)
TEACHER = torch.tensor([[4.0, 1.0, 0.0], [0.0, 0.0, 2.0], [1.0, 1.5, 0.0]])
PIXELS = torch.randint(0, 256, (3, 3, 4, 4), dtype=torch.uint8)
VALID = torch.tensor([True, True, False])  # the third image could not be decoded: it counts nowhere


def test_the_soft_term_is_hintons_kl_times_t_squared():
    data_loss = torch.tensor(0.7)
    loss = teacher(TEACHER, alpha=0.3, temperature=2.0).loss(data_loss, STUDENT, PIXELS, VALID)
    kl = []
    for s, t in zip(STUDENT[:2].tolist(), TEACHER[:2].tolist()):
        p = [math.exp(v / 2) / sum(math.exp(u / 2) for u in t) for v in t]
        q = [math.exp(v / 2) / sum(math.exp(u / 2) for u in s) for v in s]
        kl.append(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q)) * 2**2)
    assert loss.item() == pytest.approx(0.7 * 0.7 + 0.3 * sum(kl) / 2, rel=1e-6)


def test_the_hard_term_is_the_cross_entropy_with_the_teachers_top_class():
    loss = teacher(TEACHER, alpha=0.5, hard=True).loss(torch.tensor(1.0), STUDENT, PIXELS, VALID)
    top = F.cross_entropy(STUDENT[:2], torch.tensor([0, 2]))
    assert loss.item() == pytest.approx(0.5 + 0.5 * top.item(), rel=1e-6)
    assert teacher(TEACHER, alpha=0.0).loss(torch.tensor(1.25), STUDENT, PIXELS, VALID).item() == 1.25


def test_the_teacher_sees_the_batch_in_its_own_normalisation_frozen_and_in_eval_mode():
    wrapped = teacher(TEACHER, mean=(0.2, 0.4, 0.6), std=(0.5, 0.5, 0.5))
    mixed = PIXELS.float() * 0.7 + PIXELS.flip(0).float() * 0.3  # a MixUp batch is float, on the 0-255 scale
    loss = wrapped.loss(torch.tensor(0.0, requires_grad=True), STUDENT, mixed, VALID)
    loss.backward()
    [(seen, training, grad)] = wrapped.model.seen
    expected = (mixed / 255 - torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1)) / 0.5
    torch.testing.assert_close(seen, expected)
    assert not training and not grad and wrapped.model.weight.grad is None
    assert STUDENT.grad is not None and STUDENT.grad.abs().sum() > 0


def test_a_teacher_with_the_classes_in_another_order_is_reordered_and_other_classes_are_refused():
    assert class_order(["a", "b", "c"], ["a", "b", "c"], "t") is None
    assert class_order(["c", "a", "b"], ["a", "b", "c"], "t") == [1, 2, 0]
    with pytest.raises(HfclsError) as error:
        class_order(["cat", "dog"], ["cat", "dog", "fox"], "t/best")
    assert str(error.value) == (
        "train.distill.teacher t/best predicts the classes [cat, dog] (2), but the data has [cat, dog, fox] (3); "
        "distil from a teacher trained on the data's classes"
    )


def test_the_teachers_normalisation_comes_from_its_processor():
    from transformers import BitImageProcessor

    bit = BitImageProcessor(image_mean=[0.1, 0.2, 0.3], image_std=[0.4, 0.5, 0.6])
    assert normalisation(bit, "t") == ([0.1, 0.2, 0.3], [0.4, 0.5, 0.6])
    timm_like = SimpleNamespace(data_config={"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)})
    assert normalisation(timm_like, "t") == ([0.5] * 3, [0.25] * 3)
    assert normalisation(SimpleNamespace(do_normalize=False), "t") == ([0.0] * 3, [1.0] * 3)
    with pytest.raises(HfclsError, match="does not say how its inputs were normalised"):
        normalisation(SimpleNamespace(), "t")


def distill_recipe(tmp_path, data, teacher_dir, name="student.yaml", epochs=2, **distill):
    recipe = tiny_recipe_dict(
        *data,
        train={
            "epochs": epochs,
            "deterministic": True,
            "mixup_alpha": 0.4,
            "distill": {"teacher": str(teacher_dir), "alpha": 0.7, "temperature": 2.0, **distill},
        },
    )
    return write_recipe(tmp_path / name, recipe)


@pytest.fixture
def colours(tmp_path):
    return make_image_folder(tmp_path / "train", per_class=8, seed=0), make_image_folder(tmp_path / "val", 4, seed=1)


def test_a_teacher_is_read_from_every_artifact_form_and_gives_its_logits(two_epoch_run, colours, tmp_path):
    [published] = (two_epoch_run / "publish").glob("*.safetensors")
    forms = [two_epoch_run / "latest", two_epoch_run / "checkpoints" / "epoch_2", published]
    batch = PIXELS.repeat(1, 1, 4, 4)  # 16 x 16
    logits = []
    for form in forms:
        with built_run(load_recipe(distill_recipe(tmp_path, colours, form)), tmp_path / "w") as run:
            assert not any(p.requires_grad for p in run.teacher.model.parameters())
            logits.append(run.teacher.logits(batch))
    assert max_difference(dict(enumerate(logits)), dict(enumerate(logits[:1] * 3))) == 0


def test_distillation_resumes_exactly_and_keeps_no_teacher_in_checkpoints(two_epoch_run, colours, tmp_path):
    recipe = distill_recipe(tmp_path, colours, two_epoch_run / "best")
    train(load_recipe(recipe), tmp_path / "straight")
    resumed = tmp_path / "resumed"
    shutil.copytree(tmp_path / "straight" / "checkpoints" / "epoch_1", resumed / "checkpoints" / "epoch_1")
    (resumed / "metrics.jsonl").write_text((tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()[0] + "\n")
    train(load_recipe(recipe), resumed, resume_from="auto")
    assert max_difference(weights(tmp_path / "straight", "epoch_2"), weights(resumed, "epoch_2")) == 0
    assert deterministic_rows(resumed) == deterministic_rows(tmp_path / "straight")
    # The checkpoint holds the student alone: the teacher's weights are nowhere in it.
    alone = tiny_recipe_dict(*colours)
    with built_run(load_recipe(write_recipe(tmp_path / "alone.yaml", alone)), tmp_path / "alone") as run:
        assert set(weights(resumed, "epoch_2")) == set(run.model.state_dict())


def test_the_teachers_term_changes_what_the_student_learns(two_epoch_run, colours, tmp_path):
    alone = tiny_recipe_dict(*colours, train={"epochs": 1, "deterministic": True, "mixup_alpha": 0.4})
    train(load_recipe(write_recipe(tmp_path / "alone.yaml", alone)), tmp_path / "alone")
    train(load_recipe(distill_recipe(tmp_path, colours, two_epoch_run / "best", epochs=1)), tmp_path / "taught")
    assert max_difference(weights(tmp_path / "alone", "epoch_1"), weights(tmp_path / "taught", "epoch_1")) > 1e-3


def test_a_teacher_that_cannot_be_read_or_knows_other_classes_is_one_line(command, two_epoch_run, colours, tmp_path):
    missing = distill_recipe(tmp_path, colours, tmp_path / "no_such_run" / "best", name="missing.yaml")
    line = user_error(command("hfcls-train", missing, "--work-dir", tmp_path / "w1"), "train.distill.teacher")
    assert "no_such_run/best is no file or folder here, and no model the Hub gives" in line
    (tmp_path / "train" / "bird").mkdir()
    shutil.copy(next((tmp_path / "train" / "cat").iterdir()), tmp_path / "train" / "bird" / "0.png")
    more = distill_recipe(tmp_path, colours, two_epoch_run / "best", name="more.yaml")
    user_error(
        command("hfcls-train", more, "--work-dir", tmp_path / "w2"),
        "predicts the classes [cat, dog, fox] (3), but the data has [bird, cat, dog, fox] (4)",
    )
    assert not (tmp_path / "w2" / "checkpoints").exists()


def test_distillation_trains_in_memory_under_bf16(two_epoch_run, colours, tmp_path):
    recipe = load_recipe(
        distill_recipe(tmp_path, colours, two_epoch_run / "latest", epochs=1),
        ["data.in_memory=true", "data.train_pipeline=[{type: RandomCrop, size: 16}]", "train.mixed_precision=bf16"],
    )
    with built_run(recipe, tmp_path / "w") as run:
        assert run.teacher.inputs.autocast_dtype == torch.bfloat16
        batch = next(iter(run.train_loader))
        loss = train_step(run, batch)
    assert loss is not None and torch.isfinite(loss)


def test_two_processes_distil_as_one(two_epoch_run, colours, tmp_path, warm_bin):
    """Each process's teacher labels its half of every batch: two processes of batch 4 train the student as one
    process of batch 8 does (a student without BatchNorm, whose statistics would be per process)."""
    recipe = yaml.safe_load(distill_recipe(tmp_path, colours, two_epoch_run / "latest").read_text())
    recipe["model"] = {"config": TINY_VIT}
    recipe["optim"] = {"type": "sgd", "lr": 0.05}  # Adam's first steps follow the gradients' signs, rounding included
    recipe["train"]["mixup_alpha"] = 0.0  # MixUp mixes within each process's share of the batch
    one = write_recipe(tmp_path / "one.yaml", recipe)
    recipe["data"]["batch_size"] = 4
    two = write_recipe(tmp_path / "two.yaml", recipe)
    train(load_recipe(one), tmp_path / "one")
    run_two_processes(
        warm_bin, "hfcls.cli.train", two, "--work-dir", tmp_path / "two", port=29731, ACCELERATE_USE_CPU=1
    )
    assert "batch 4 x 2 processes x 1 accumulation = 8; 3 steps per epoch" in (tmp_path / "two" / "log.txt").read_text()
    assert max_difference(weights(tmp_path / "one", "epoch_2"), weights(tmp_path / "two", "epoch_2")) < 1e-5
    alone = recipe | {"train": {k: v for k, v in recipe["train"].items() if k != "distill"}}
    train(load_recipe(write_recipe(tmp_path / "alone.yaml", alone)), tmp_path / "alone")
    assert max_difference(weights(tmp_path / "alone", "epoch_2"), weights(tmp_path / "two", "epoch_2")) > 1e-3
