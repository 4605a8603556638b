"""Each speed/accuracy option of the recipe's `train` section changes what it should."""

import types

import pytest
import torch
from conftest import make_image_folder, tiny_recipe_dict, write_recipe
from safetensors.torch import load_file

from hfcls import engine
from hfcls.ema import ModelEma
from hfcls.engine import adapt_model, classification_loss, model_inputs, train
from hfcls.errors import HfclsError
from hfcls.logs import read_jsonl
from hfcls.mixing import MixingCollate, build_mixer
from hfcls.models import build_model
from hfcls.recipe import load_recipe

NAMES = ["cat", "dog", "fox"]
# LayerNorm only: the loss of a batch is the mean of its samples' losses.
TINY_VIT = {"model_type": "vit", "image_size": 16, "patch_size": 4, "hidden_size": 16, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 32}


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
        recipe = recipe_for(tmp_path, folders, name, model=model, optim=optim, data={"batch_size": batch},
                            train={"gradient_accumulation_steps": accumulate})
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


def test_label_smoothing_changes_the_loss():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    labels = torch.tensor([0, 1])
    valid = torch.tensor([True, True])
    log_p = logits.log_softmax(dim=1)
    eps = 0.3
    # (1 - eps) * NLL + eps * mean over classes of -log p
    expected = ((1 - eps) * -log_p[[0, 1], labels] + eps * -log_p.mean(dim=1)).mean()
    assert classification_loss(logits, labels, valid, eps).item() == pytest.approx(expected.item(), rel=1e-6)
    assert classification_loss(logits, labels, valid, 0.0).item() == pytest.approx(-log_p[[0, 1], labels].mean().item())


def samples(n=4, size=8, seed=7):
    generator = torch.Generator().manual_seed(0)
    return [{"pixel_values": torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=generator),
             "labels": i % 3, "valid": True, "file": f"{i}.png", "seed": seed} for i in range(n)]


def plain_collate(items):
    return {"pixel_values": torch.stack([s["pixel_values"] for s in items]),
            "labels": torch.tensor([s["labels"] for s in items]),
            "valid": torch.tensor([s["valid"] for s in items])}


def test_mixup_blends_images_and_labels():
    items = samples()
    batch = MixingCollate(plain_collate, build_mixer(3, mixup_alpha=0.4))(items)
    images, labels = plain_collate(items)["pixel_values"].float(), batch["labels"]
    assert labels.shape == (4, 3) and torch.allclose(labels.sum(dim=1), torch.ones(4))
    # Sample 1 (class 1) is blended with sample 0 (class 0), the batch rolled by one.
    lam = labels[1, 1].item()
    assert 0 < lam < 1 and labels[1, 0].item() == pytest.approx(1 - lam)
    assert torch.allclose(batch["pixel_values"][1], lam * images[1] + (1 - lam) * images[0], atol=1e-3)
    # Seeded by the samples: the same batch mixes the same way again; another seed differently.
    assert torch.equal(MixingCollate(plain_collate, build_mixer(3, mixup_alpha=0.4))(items)["labels"], labels)
    assert not torch.equal(MixingCollate(plain_collate, build_mixer(3, mixup_alpha=0.4))(samples(seed=8))["labels"], labels)


def test_cutmix_pastes_a_box():
    items = samples()
    batch = MixingCollate(plain_collate, build_mixer(3, cutmix_alpha=1.0))(items)
    images = plain_collate(items)["pixel_values"].float()
    pasted = batch["pixel_values"][1] != images[1]
    assert torch.equal(batch["pixel_values"][1][pasted], images[0][pasted])  # from the rolled batch
    area = pasted.any(dim=0).float().mean().item()
    assert batch["labels"][1, 0].item() == pytest.approx(area, abs=1e-6)  # label weight = pasted area


@pytest.mark.parametrize("in_memory", [False, True])
def test_mixup_in_training_feeds_soft_labels(tmp_path, tiny_data, monkeypatch, in_memory):
    seen = []
    loss = engine.classification_loss
    monkeypatch.setattr(engine, "classification_loss", lambda logits, labels, *a: seen.append(labels) or loss(logits, labels, *a))
    data = {"in_memory": True, "train_pipeline": [{"type": "RandomCrop", "size": 16, "padding": 2}]} if in_memory else {}
    train(recipe_for(tmp_path, tiny_data, data=data, train={"mixup_alpha": 0.4, "cutmix_alpha": 1.0}), tmp_path / "w")
    assert len(seen) == 3 and all(labels.shape == (8, 3) and labels.dtype == torch.float32 for labels in seen)
    assert all(((labels > 0) & (labels < 1)).any() for labels in seen)


def test_ema_is_evaluated_and_exported(tmp_path, tiny_data):
    best_by_loss = {"save_best": "loss", "rule": "less"}  # val loss falls: best/ is epoch 2
    for name, ema in (("raw", None), ("ema", {"decay": 0.5})):
        recipe = recipe_for(tmp_path, tiny_data, train={"epochs": 2, "ema": ema}, evaluation=best_by_loss)
        train(recipe, tmp_path / name)
    checkpoint = tmp_path / "ema" / "checkpoints" / "epoch_2"
    raw = load_file(checkpoint / "model.safetensors")
    ema = torch.load(checkpoint / "custom_checkpoint_1.pkl", weights_only=True)  # registered after the scheduler
    key = "resnet.embedder.embedder.convolution.weight"
    assert (raw[key] - ema[key]).abs().max() > 1e-4
    for export in ("latest", "best"):
        exported = load_file(tmp_path / "ema" / export / "model.safetensors")
        assert exported.keys() == raw.keys() and all(torch.equal(exported[k], ema[k]) for k in exported)
    # Same training, same raw weights; the EMA run evaluates other weights.
    assert torch.equal(raw[key], load_file(tmp_path / "raw" / "checkpoints" / "epoch_2" / "model.safetensors")[key])
    ema_rows, raw_rows = (read_jsonl(tmp_path / name / "metrics.jsonl") for name in ("ema", "raw"))
    assert [row["loss"] for row in ema_rows] == [row["loss"] for row in raw_rows]
    assert ema_rows[1]["val_loss"] != raw_rows[1]["val_loss"]
    assert ema_rows[1]["val_loss"] < ema_rows[0]["val_loss"]


def test_ema_updates_every_n_steps():
    model = torch.nn.Linear(2, 1)
    ema = ModelEma(model, decay=0.5, every_n_steps=2)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(2.0)
    ema.update(model, step=1)
    assert torch.equal(ema.module.weight, start)
    ema.update(model, step=2)
    assert torch.allclose(ema.module.weight, start + 1.0)


def test_channels_last_changes_memory_format(tiny_recipe):
    recipe = load_recipe(tiny_recipe, ["train.channels_last=true"])
    model = adapt_model(build_model(recipe.model, NAMES), recipe.train, 1, "cpu")
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    images = model_inputs({"pixel_values": torch.zeros(2, 3, 16, 16, dtype=torch.uint8)},
                          engine.Normalize([0.5] * 3, [0.5] * 3), channels_last=True)
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
    recipe = recipe_for(tmp_path, tiny_data, train={"auto_scale_lr": {"base_batch_size": 32},
                                                    "gradient_accumulation_steps": 2})
    train(recipe, tmp_path / "w")
    # lr 0.01 x (batch 8 x 1 process x accumulation 2) / 32
    assert read_jsonl(tmp_path / "w" / "metrics.jsonl")[0]["lr"] == pytest.approx(0.005)


def test_bf16_mixed_precision_runs_the_model_in_bf16(tmp_path, tiny_data, monkeypatch):
    dtypes = []

    def build_and_watch(*args):
        model = build_model(*args)
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(lambda module, inputs, output: dtypes.append((module.training, output.dtype)))
        return model

    monkeypatch.setattr(engine, "build_model", build_and_watch)
    train(recipe_for(tmp_path, tiny_data, train={"mixed_precision": "bf16"}), tmp_path / "bf16")
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


def test_compile_runs_a_compiled_model(tmp_path, tiny_data, monkeypatch):
    import torch._dynamo

    # Dynamo's graph capture without inductor's C++ build (minutes on 2 cores).
    monkeypatch.setattr(engine, "COMPILE_BACKEND", "eager")
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    train(recipe_for(tmp_path, tiny_data, train={"compile": True}), tmp_path / "w")
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0
    assert (tmp_path / "w" / "best" / "model.safetensors").is_file()
    keys = load_file(tmp_path / "w" / "best" / "model.safetensors").keys()
    assert not any("_orig_mod" in key for key in keys)


def test_eta_extrapolates_the_pace_since_start(monkeypatch):
    run = types.SimpleNamespace(started=(100.0, 10), total_steps=50)
    monkeypatch.setattr(engine.time, "perf_counter", lambda: 120.0)
    assert engine.Run.eta(run, 10) == "?"
    assert engine.Run.eta(run, 30) == "00:20"  # 20 steps in 20 s; 20 steps left
