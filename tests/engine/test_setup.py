"""What build_run makes of the recipe: the adapted model (channels_last, sync_bn), the scaled LR, the ETA."""

import types

import pytest
import torch

from hfcls.api import train
from hfcls.engine.setup import Run, adapt_model, compile_backend
from hfcls.errors import HfclsError
from hfcls.logs import read_jsonl
from hfcls.models import build_model
from hfcls.predict.inputs import ModelInputs
from hfcls.recipe import load_recipe

from conftest import TINY_VIT, tiny_recipe_dict, write_recipe

NAMES = ["cat", "dog", "fox"]


def test_channels_last_changes_memory_format(tiny_recipe):
    recipe = load_recipe(tiny_recipe, ["train.channels_last=true"])
    model = adapt_model(build_model(recipe.model, NAMES), recipe.train, 1, "cpu")
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    images = ModelInputs([0.5] * 3, [0.5] * 3, channels_last=True)(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    assert images.is_contiguous(memory_format=torch.channels_last)


def test_sync_bn_converts_batchnorm_with_several_processes(tiny_recipe):
    recipe = load_recipe(tiny_recipe, ["train.sync_bn=true"])
    model = build_model(recipe.model, NAMES)
    batchnorms = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert batchnorms > 0
    synced = adapt_model(model, recipe.train, 2, "cuda")
    assert sum(isinstance(m, torch.nn.SyncBatchNorm) for m in synced.modules()) == batchnorms
    single = adapt_model(build_model(recipe.model, NAMES), recipe.train, 1, "cpu")
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in single.modules())
    with pytest.raises(HfclsError, match="sync_bn needs GPUs"):
        adapt_model(build_model(recipe.model, NAMES), recipe.train, 2, "cpu")


def test_auto_scale_lr_scales_by_total_batch(tmp_path, tiny_data):
    recipe = load_recipe(
        write_recipe(
            tmp_path / "r.yaml",
            tiny_recipe_dict(
                *tiny_data, train={"auto_scale_lr": {"base_batch_size": 32}, "gradient_accumulation_steps": 2}
            ),
        )
    )
    train(recipe, tmp_path / "w")
    # lr 0.01 x (batch 8 x 1 process x accumulation 2) / 32
    assert read_jsonl(tmp_path / "w" / "metrics.jsonl")[0]["lr"] == pytest.approx(0.005)


def test_unknown_compile_backend_names_the_key_and_the_known_ones(tiny_recipe):
    recipe = load_recipe(tiny_recipe, ["train.compile_backend=indcutor"])
    with pytest.raises(
        HfclsError,
        match=r"train\.compile_backend: unknown backend 'indcutor' "
        r"\(did you mean \"inductor\"\?\); torch\.compile knows .*eager",
    ):
        compile_backend(recipe.train)
    assert compile_backend(load_recipe(tiny_recipe, ["train.compile_backend=eager"]).train) == "eager"


def test_eta_extrapolates_the_pace_since_start():
    run = types.SimpleNamespace(started=(100.0, 10), total_steps=50)
    assert Run.eta(run, 10, now=120.0) == "?"
    assert Run.eta(run, 30, now=120.0) == "00:20"  # 20 steps in 20 s; 20 steps left


def test_training_without_an_eval_pipeline_is_refused_before_the_data_loads(tmp_path):
    # The recipe loads (hfcls-flops needs no eval pipeline); training exports, so it does.
    recipe = load_recipe(
        write_recipe(
            tmp_path / "r.yaml",
            tiny_recipe_dict(tmp_path / "missing", tmp_path / "missing", data={"eval_pipeline": []}),
        )
    )
    with pytest.raises(HfclsError, match=r"data\.eval_pipeline is empty, but training exports"):
        train(recipe, tmp_path / "w")


def test_batches_are_copied_to_the_device_without_blocking(tmp_path, tiny_data):
    from hfcls.engine.setup import accelerator_session, build_run, make_accelerator

    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe_dict(*tiny_data)))
    assert make_accelerator(recipe).dataloader_config.non_blocking
    with accelerator_session(recipe, tmp_path / "w") as accelerator:
        run = build_run(recipe, tmp_path / "w", accelerator)
        # Accelerate's prepared loaders keep the flag; it takes effect with pinned memory on CUDA.
        assert run.train_loader.prepared._non_blocking and run.val_loader.prepared._non_blocking
        batch = next(iter(run.train_loader))
        assert batch["pixel_values"].dtype == torch.uint8


def test_a_model_that_cannot_take_every_progressive_side_is_refused_before_training(tmp_path, tiny_data):
    recipe = load_recipe(
        write_recipe(
            tmp_path / "r.yaml",
            tiny_recipe_dict(*tiny_data, model={"config": TINY_VIT}, data={"progressive_resizing": [[0, 12], [1, 16]]}),
        )
    )
    with pytest.raises(
        HfclsError,
        match=r"data.progressive_resizing: vit cannot take 12 x 12 images .*"
        r"data.progressive_resizing=null",
    ):
        train(recipe, tmp_path / "work")
    assert not (tmp_path / "work" / "checkpoints").exists()
