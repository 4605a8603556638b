"""Resume keeps what shapes the optimizer and the LR schedule, or refuses naming the key that changed
(hfcls.artifacts.resume.recipe_fingerprint / check_compatible)."""

import json
import shutil

import pytest

from hfcls.api import train
from hfcls.artifacts.checkpoint import STATE_FILE
from hfcls.errors import HfclsError
from hfcls.recipe import load_recipe

from conftest import make_image_folder, tiny_recipe_dict, write_recipe

pytestmark = pytest.mark.xdist_group("resume_schedule")  # one worker builds the module's fixture, once


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """(recipe path, work dir) of a finished 1-epoch run: 24 images, batch 8, 3 steps per epoch."""
    root = tmp_path_factory.mktemp("resume_schedule")
    train_dir = make_image_folder(root / "train", per_class=8, seed=0)
    val_dir = make_image_folder(root / "val", per_class=2, seed=1)
    recipe = write_recipe(root / "r.yaml", tiny_recipe_dict(train_dir, val_dir, schedule={"type": "cosine"}))
    train(load_recipe(recipe), root / "work")
    return recipe, root / "work"


def resume(recipe, work, *overrides):
    train(load_recipe(recipe, ["train.epochs=2", *overrides]), work, resume_from="auto")


@pytest.mark.parametrize(
    "override, key, saved, now",
    [
        ("data.batch_size=4", "data.batch_size", "8", "4"),
        ("train.gradient_accumulation_steps=3", "train.gradient_accumulation_steps", "1", "3"),
        ("optim.lr=0.1", "optim.lr", "0.01", "0.1"),
        ("optim.weight_decay=0.1", "optim.weight_decay", "0.0", "0.1"),
        ("schedule.type=linear", "schedule.type", "'cosine'", "'linear'"),
        ("schedule.warmup_steps=2", "schedule.warmup_steps", "0", "2"),
        ("train.auto_scale_lr={base_batch_size: 4}", "train.auto_scale_lr", "None", "{'base_batch_size': 4}"),
    ],
)
def test_a_changed_schedule_setting_is_refused_by_name(one_epoch, override, key, saved, now):
    recipe, work = one_epoch
    before = (work / "recipe.yaml").read_text()
    with pytest.raises(HfclsError) as error:
        resume(recipe, work, override)
    assert f"was trained with {key} {saved}, this run has {now}:" in str(error.value)
    assert f"--load-from {work / 'checkpoints' / 'epoch_1'}" in str(error.value)
    assert (work / "recipe.yaml").read_text() == before  # the refused run wrote nothing over the run's recipe


def test_more_training_images_change_the_steps_per_epoch(one_epoch, tmp_path):
    recipe, work = one_epoch
    bigger = make_image_folder(tmp_path / "train", per_class=12, seed=0)  # 36 images: 4 steps
    with pytest.raises(
        HfclsError,
        match=r"trained with steps per epoch 3, this run has 4 \(the training data "
        r"changed size\?\)",
    ):
        resume(recipe, work, f"data.train.path={bigger}")


def test_another_process_count_is_refused(one_epoch, tmp_path):
    recipe, work = one_epoch
    copy = tmp_path / "work"
    shutil.copytree(work / "checkpoints", copy / "checkpoints")
    state = json.loads((copy / "checkpoints" / "epoch_1" / STATE_FILE).read_text())
    assert state["recipe"]["number of processes"] == 1
    state["recipe"]["number of processes"] = 2  # as a run on two processes records it
    (copy / "checkpoints" / "epoch_1" / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(HfclsError, match="trained with number of processes 2, this run has 1"):
        resume(recipe, copy)


def test_an_unchanged_recipe_resumes(one_epoch, tmp_path):
    recipe, work = one_epoch
    copy = tmp_path / "work"
    shutil.copytree(work / "checkpoints", copy / "checkpoints")
    resume(recipe, copy)  # only train.epochs changed: recomputed, with a warning
    assert json.loads((copy / "checkpoints" / "epoch_2" / STATE_FILE).read_text())["step"] == 6
