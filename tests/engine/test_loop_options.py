"""Each speed/accuracy option of the recipe's `train` section changes what it should in a training run."""

import torch
from safetensors.torch import load_file

from hfcls.api import train
from hfcls.artifacts.checkpoint import EMA_FILE
from hfcls.engine.ema import ModelEma
from hfcls.engine.loop import train_epochs
from hfcls.logs import read_jsonl
from hfcls.models import build_model
from hfcls.recipe import load_recipe

from conftest import TINY_VIT, built_run, fresh_state, make_image_folder, tiny_recipe_dict, write_recipe

NAMES = ["cat", "dog", "fox"]


def recipe_for(tmp_path, folders, name="r", **sections):
    return load_recipe(write_recipe(tmp_path / f"{name}.yaml", tiny_recipe_dict(*folders, **sections)))


def parameters(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def initial_model(recipe):
    """The model `train` starts from: the same seed, the same build."""
    torch.manual_seed(recipe.seed)
    return build_model(recipe.model, NAMES)


def test_gradient_accumulation_matches_a_twice_larger_batch(tmp_path):
    folders = (make_image_folder(tmp_path / "train", per_class=16), make_image_folder(tmp_path / "val", per_class=2))
    model = {"config": TINY_VIT}
    optim = {"type": "sgd", "lr": 0.5, "momentum": 0.9, "weight_decay": 0.0}
    trained = {}
    for name, batch, accumulate in (("big", 16, 1), ("accumulated", 8, 2)):
        recipe = recipe_for(
            tmp_path,
            folders,
            name,
            model=model,
            optim=optim,
            data={"batch_size": batch},
            train={"gradient_accumulation_steps": accumulate},
        )
        train(recipe, tmp_path / name)
        trained[name] = load_file(tmp_path / name / "checkpoints" / "epoch_1" / "model.safetensors")
        assert read_jsonl(tmp_path / name / "metrics.jsonl")[0]["step"] == 3  # 48 images / 16
    start = {k: v.detach() for k, v in initial_model(recipe).state_dict().items()}
    big, accumulated = trained["big"], trained["accumulated"]
    moved = max((big[k] - start[k]).abs().max().item() for k in big)
    assert moved > 1e-2
    assert max((big[k] - accumulated[k]).abs().max().item() for k in big) < 1e-5


def test_clip_grad_norm_bounds_each_update(tmp_path, tiny_data):
    optim = {"type": "sgd", "lr": 1.0, "momentum": 0.0, "weight_decay": 0.0}
    moves = {}
    for clip in (None, 1e-3):
        recipe = recipe_for(tmp_path, tiny_data, optim=optim, train={"clip_grad_norm": clip})
        train(recipe, tmp_path / str(clip))
        start = parameters(initial_model(recipe))
        end = load_file(tmp_path / str(clip) / "checkpoints" / "epoch_1" / "model.safetensors")
        moves[clip] = torch.cat([(end[k] - start[k]).flatten() for k in start]).norm().item()
    # 3 SGD steps of lr 1 on gradients of norm <= 1e-3
    assert 1e-4 < moves[1e-3] <= 3e-3 + 1e-6
    assert moves[None] > 10 * moves[1e-3]


# ----------------------------------------------------------------------------- EMA


def test_ema_is_evaluated_and_exported(tmp_path, tiny_data):
    best_by_loss = {"save_best": "loss", "rule": "less"}  # val loss falls: best/ is epoch 2
    for name, ema in (("raw", None), ("ema", {"decay": 0.5})):
        recipe = recipe_for(tmp_path, tiny_data, train={"epochs": 2, "ema": ema}, evaluation=best_by_loss)
        train(recipe, tmp_path / name)
    checkpoint = tmp_path / "ema" / "checkpoints" / "epoch_2"
    raw = load_file(checkpoint / "model.safetensors")
    ema = load_file(checkpoint / EMA_FILE)  # saved by name beside Accelerate's state
    key = "resnet.embedder.embedder.convolution.weight"
    assert ema.keys() == raw.keys()
    assert (raw[key] - ema[key]).abs().max() > 1e-4
    for export in ("latest", "best"):
        exported = load_file(tmp_path / "ema" / export / "model.safetensors")
        assert exported.keys() == raw.keys() and all(torch.equal(exported[k], ema[k]) for k in exported)
    # Same training, same raw weights; the EMA run evaluates other weights.
    assert torch.equal(raw[key], load_file(tmp_path / "raw" / "checkpoints" / "epoch_2" / "model.safetensors")[key])
    assert not (tmp_path / "raw" / "checkpoints" / "epoch_2" / EMA_FILE).exists()
    ema_rows, raw_rows = (read_jsonl(tmp_path / name / "metrics.jsonl") for name in ("ema", "raw"))
    assert [row["loss"] for row in ema_rows] == [row["loss"] for row in raw_rows]
    assert ema_rows[1]["val_loss"] != raw_rows[1]["val_loss"]
    assert ema_rows[1]["val_loss"] < ema_rows[0]["val_loss"]


def test_ema_updates_every_n_steps():
    model = torch.nn.Linear(2, 1)
    ema = ModelEma(model, decay=0.5, every_n_steps=2, warmup=False)  # a fixed decay
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(2.0)
    ema.update(model, step=1)
    assert torch.equal(ema.module.weight, start)
    ema.update(model, step=2)
    assert torch.allclose(ema.module.weight, start + 1.0)


# ----------------------------------------------------------------------------- precision, determinism, compile


def test_bf16_mixed_precision_runs_the_model_in_bf16(tmp_path, tiny_data):
    dtypes = []
    recipe = recipe_for(tmp_path, tiny_data, train={"mixed_precision": "bf16", "log_with": []})
    with built_run(recipe, tmp_path / "bf16") as run:
        conv = next(m for m in run.model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(lambda module, inputs, output: dtypes.append((module.training, output.dtype)))
        train_epochs(run, fresh_state(run), validate=True)
    # 3 training batches and 2 evaluation batches, all under bf16 autocast
    assert dtypes == [(True, torch.bfloat16)] * 3 + [(False, torch.bfloat16)] * 2


def test_deterministic_turns_on_deterministic_algorithms(tmp_path, tiny_data):
    try:
        train(recipe_for(tmp_path, tiny_data, train={"deterministic": True}), tmp_path / "w")
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
    train(recipe_for(tmp_path, tiny_data, train={"deterministic": False}), tmp_path / "w2")
    assert not torch.are_deterministic_algorithms_enabled()


def test_compile_runs_a_compiled_model(tmp_path, tiny_data):
    import torch._dynamo

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    # Dynamo's graph capture without inductor's C++ build (minutes on 2 cores).
    train(recipe_for(tmp_path, tiny_data, train={"compile": True, "compile_backend": "eager"}), tmp_path / "w")
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0
    assert (tmp_path / "w" / "best" / "model.safetensors").is_file()
    keys = load_file(tmp_path / "w" / "best" / "model.safetensors").keys()
    assert not any("_orig_mod" in key for key in keys)
