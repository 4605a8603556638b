"""The figures of docs/tutorials/reuse.md, offline on scikit-learn's digits: knowledge distillation on a 20 %
subset, LoRA against full fine-tuning, k-NN on the demo model's features against its linear head.

    python benchmarks/reuse_proofs.py distill --out work_dirs/reuse_proofs   # a teacher, then students on 20 %
    python benchmarks/reuse_proofs.py lora --out work_dirs/reuse_proofs      # pretrain on 0-4, fine-tune on 5-9
    python benchmarks/reuse_proofs.py knn --out work_dirs/reuse_proofs       # the demo recipe, then hfcls-eval knn

Each prints a Markdown table and writes it, with every run's numbers, to OUT/<what>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DIGITS_RECIPE = REPO / "recipes" / "digits" / "resnet-tiny_1xb64_digits.yaml"
# The teacher: the demo's ResNet, wider and twice as deep (~0.7 M parameters against ~0.08 M).
LARGE = ["model.config.embedding_size=32", "model.config.hidden_sizes=[32,64,128]", "model.config.depths=[2,2,2]"]
SEEDS = (0, 1, 2)


def prepared(out: Path, name: str, keep: dict | None = None) -> Path:
    """A digits folder (train/val) under OUT, written once; keep={class: fraction} thins train."""
    from hfcls.data.prepare import prepare_digits

    folder = out / name
    if not (folder / "val").is_dir():
        prepare_digits(folder, keep=keep)
    return folder


def class_subset(out: Path, name: str, classes) -> Path:
    """A copy of the digits folder with the given classes only."""
    import shutil

    full, folder = prepared(out, "digits"), out / name
    for split in ("train", "val"):
        for c in classes:
            if not (folder / split / str(c)).is_dir():
                shutil.copytree(full / split / str(c), folder / split / str(c))
    return folder


def run(work_dir: Path, data: Path, overrides: list) -> dict:
    """Train the digits recipe on `data` with `overrides` into `work_dir` (reused when finished); its last
    validation metrics and wall time."""
    from hfcls.api import train
    from hfcls.logs import read_jsonl
    from hfcls.recipe import load_recipe

    if not (work_dir / "publish").is_dir():
        recipe = load_recipe(
            DIGITS_RECIPE, [f"data.train.path={data / 'train'}", f"data.val.path={data / 'val'}", *overrides]
        )
        start = time.perf_counter()
        train(recipe, work_dir)
        (work_dir / "wall.txt").write_text(f"{time.perf_counter() - start:.1f}")
    row = [r for r in read_jsonl(work_dir / "metrics.jsonl") if "val_accuracy_top1" in r][-1]
    return {"top1": row["val_accuracy_top1"], "seconds": float((work_dir / "wall.txt").read_text())}


# Two schedules for the students: the digits recipe as it is (20 epochs), and a patient one with MixUp (60
# epochs): distillation pays when the student sees many views the teacher labels for it (Beyer et al. 2022,
# "Knowledge distillation: a good teacher is patient and consistent").
SCHEDULES = {"20 epochs": ["train.epochs=20"], "60 epochs + MixUp 0.2": ["train.epochs=60", "train.mixup_alpha=0.2"]}


def distill(out: Path) -> dict:
    full, subset = prepared(out, "digits"), prepared(out, "digits_20pct", {c: 0.2 for c in range(10)})
    teacher = out / "teacher" / "best"
    rows = {"teacher (0.7 M parameters, all 1,437 training images, 20 epochs)": [run(out / "teacher", full, LARGE)]}
    variants = {
        "alone": [],
        "soft, alpha 0.5, T 4": [f"train.distill={{teacher: {teacher}}}"],
        "soft, alpha 0.9, T 4": [f"train.distill={{teacher: {teacher}, alpha: 0.9}}"],
        "hard, alpha 0.5": [f"train.distill={{teacher: {teacher}, hard: true}}"],
    }
    for schedule, settings in SCHEDULES.items():
        for name, overrides in variants.items():
            slug = re.sub(r"\W+", "_", f"{schedule} {name}").strip("_")
            rows[f"tiny (0.08 M), {schedule}, {name}"] = [
                run(out / slug / f"seed{seed}", subset, [f"seed={seed}", *settings, *overrides]) for seed in SEEDS
            ]
    return rows


# The two families LoRA's defaults differ for: the demo's ResNet (every dense convolution) and a small ViT
# (the query and value projections). Each: (model.config, the prefix that freezes all but the head, run prefix).
FAMILIES = {
    "resnet-tiny": (
        "{model_type: resnet, embedding_size: 16, hidden_sizes: [16, 32, 64], depths: [1, 1, 1], layer_type: basic}",
        "resnet.",
        "",
    ),
    "vit-tiny": (
        "{model_type: vit, hidden_size: 64, num_hidden_layers: 4, num_attention_heads: 4, intermediate_size: 128, "
        "image_size: 32, patch_size: 4}",
        "vit.",
        "vit_",
    ),
}


def lora(out: Path) -> dict:
    """Pretrain on digits 0-4, then fine-tune on 5-9: the whole model, LoRA (the family's default targets),
    the head alone, and for reference the model trained from scratch on 5-9."""
    low, high = class_subset(out, "digits_0to4", range(5)), class_subset(out, "digits_5to9", range(5, 10))
    rows = {}
    for family, (config, frozen, prefix) in FAMILIES.items():
        pretrained = out / f"{prefix}pretrain_0to4"
        rows[f"{family} pretrained on 0-4 (its own val)"] = [run(pretrained, low, [f"model.config={config}"])]
        base = [f"model.pretrained={pretrained / 'best'}", "model.config=null"]
        variants = {
            "full fine-tuning": [],
            "LoRA r=8 alpha=16, default targets": ["model.lora={r: 8, alpha: 16}"],
            f"head only (optim.frozen: {frozen})": [f"optim.frozen=[{frozen}]"],
            "from scratch, no pretraining": ["model.pretrained=null", f"model.config={config}"],
        }
        for name, overrides in variants.items():
            slug = prefix + re.sub(r"\W+", "_", name.split("(")[0].split(",")[0]).strip("_")
            rows[f"{family}, {name}"] = [
                {
                    **run(out / f"{slug}_seed{seed}", high, [*base, f"seed={seed}", *overrides]),
                    **trained(out, slug, seed),
                }
                for seed in SEEDS
            ]
    return rows


def trained(out: Path, slug: str, seed: int) -> dict:
    """The trainable parameters a run's optimizer held: from its first checkpoint's optimizer state."""
    import torch

    checkpoint = sorted((out / f"{slug}_seed{seed}" / "checkpoints").iterdir())[0]
    state = torch.load(checkpoint / "optimizer.bin", weights_only=True)
    return {"trainable": sum(int(s["exp_avg"].numel()) for s in state["state"].values())}


def knn(out: Path) -> dict:
    """The demo recipe as `make demo` trains it; its linear head and k-NN on its features, on the val split."""
    from hfcls.evaluation.checkpoint import evaluate_checkpoint
    from hfcls.evaluation.request import EvalRequest
    from hfcls.recipe import load_recipe

    data = prepared(out, "digits")
    run(out / "demo", data, [])
    recipe = load_recipe(out / "demo" / "recipe.yaml")
    rows = {}
    for k in (1, 5, 10, 20, 50):
        for temperature in (0.07, None):
            options = {"k": k, "temperature": temperature, "topk": [1, 5]}
            metrics = evaluate_checkpoint(
                EvalRequest(recipe, out / "demo" / "best", metrics=("accuracy", "knn"), metric_options=options)
            ).metrics
            rows.setdefault("linear head", metrics["accuracy_top1"])
            rows[f"k-NN k={k} T={temperature}"] = metrics["knn_top1"]
    return rows


def table(rows: dict) -> str:
    lines = ["| | val top-1 (%) per seed | mean ± sd |", "| --- | --- | --- |"]
    for name, runs in rows.items():
        if not isinstance(runs, list):
            lines.append(f"| {name} | {runs:.2f} | |")
            continue
        tops = [r["top1"] for r in runs]
        spread = f"{statistics.mean(tops):.2f} ± {statistics.stdev(tops):.2f}" if len(tops) > 1 else ""
        extra = f" ({runs[0]['trainable']:,} trainable)" if "trainable" in runs[0] else ""
        lines.append(f"| {name}{extra} | {', '.join(f'{t:.2f}' for t in tops)} | {spread} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("distill", "lora", "knn"))
    parser.add_argument("--out", type=Path, default=Path("work_dirs/reuse_proofs"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {"distill": distill, "lora": lora, "knn": knn}[args.what](args.out.resolve())
    (args.out / f"{args.what}.json").write_text(json.dumps(rows, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
