"""hfcls against the tools users pick instead, on the same work, whole commands in interleaved rounds.

The peers: the Hugging Face `Trainer` (hfcls.bench.peers.trainer, written as
transformers' image-classification example is) and timm's own `train.py` from a
pytorch-image-models checkout. Each gets the recipe's image folders, model
architecture, input size, batch, AdamW settings, cosine schedule with its
warm-up, epochs, an evaluation every epoch and its worker count; hfcls runs the
recipe itself, through its loader workers and in memory. Every run is a fresh
subprocess, timed from launch by the arrival of its own output lines:

- wall: the whole command;
- first_step: launch to the end of the first optimizer step;
- images_per_sec: the tool's own training throughput, median over the epochs after the first;
- eval_time: median seconds of an evaluation;
- top1: the last evaluation's top-1 (%); and the time at which each evaluation ended,
  for time-to-accuracy.

Rounds interleave the tools, so a load that drifts weighs on all alike; the best
round of each figure is reported. `load` busy processes (one per core is the
shared-machine case) compete with every run.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from hfcls.data.formats.common import class_folder_images
from hfcls.data.formats.lists import IMAGE_EXTENSIONS
from hfcls.errors import HfclsError

PEERS = ("trainer", "timm")
TIMM_RESNETS = {  # (depths, hidden_sizes, layer_type) of a transformers ResNet config -> timm's name
    ((2, 2, 2, 2), (64, 128, 256, 512), "basic"): "resnet18",
    ((3, 4, 6, 3), (64, 128, 256, 512), "basic"): "resnet34",
    ((3, 4, 6, 3), (256, 512, 1024, 2048), "bottleneck"): "resnet50",
}


# ----------------------------------------------------------------------------- the work, as each tool is told it


def work_of(recipe) -> dict:
    """What every tool is given, read off the recipe; refuse what the peers cannot be told."""
    data, optim, schedule = recipe.data, recipe.optim, recipe.schedule
    folders = [getattr(data, split) or {} for split in ("train", "val")]
    if any(spec.get("type") != "imagefolder" for spec in folders):
        raise HfclsError("--peers needs data.train and data.val to be imagefolder sources, which every peer reads")
    if optim.type != "adamw" or schedule.type != "cosine" or recipe.model.config is None:
        raise HfclsError(
            "--peers compares AdamW with a cosine schedule on a model.config architecture; "
            f"the recipe has optim.type={optim.type}, schedule.type={schedule.type}"
        )
    size, pad = train_crop(data.train_pipeline)
    return {
        "train_dir": folders[0]["path"],
        "val_dir": folders[1]["path"],
        "model": dict(recipe.model.config),
        "epochs": recipe.train.epochs,
        "batch_size": data.batch_size,
        "lr": optim.lr,
        "weight_decay": optim.weight_decay,
        "warmup_epochs": schedule.warmup_epochs,
        "workers": data.num_workers if data.num_workers is not None else 2,
        "size": size,
        "pad": pad,
        "mean": list(data.mean),
        "std": list(data.std),
        "seed": recipe.seed,
    }


def check_full_batches(work: dict) -> None:
    """The peers drop an incomplete last batch, in evaluation too (the Trainer's dataloader_drop_last):
    a split smaller than one batch would leave a peer nothing to train or evaluate on."""
    for split in ("train", "val"):
        folder, batch_size = Path(work[f"{split}_dir"]), work["batch_size"]
        if not folder.is_dir():
            raise HfclsError(f"--peers: data.{split}.path {folder} is not a folder; prepare the data or fix the path")
        images = sum(len(files) for files in class_folder_images(folder, IMAGE_EXTENSIONS).values())
        if images < batch_size:
            raise HfclsError(
                f"--peers: data.{split} ({folder}) has {images} images, fewer than one batch of data.batch_size "
                f"{batch_size}, and the peers drop incomplete batches; lower data.batch_size to {images} or less"
            )


def train_crop(pipeline: list) -> tuple:
    """(crop size, padding) of a [Resize(size + pad), RandomCrop(size)] train pipeline."""
    kinds = [spec.get("type") for spec in pipeline]
    if kinds != ["Resize", "RandomCrop"]:
        raise HfclsError(
            f"--peers needs a train pipeline of [Resize, RandomCrop] (what every peer can be told); "
            f"the recipe has {kinds}"
        )
    resize, crop = (spec["size"] for spec in pipeline)
    side = crop if isinstance(crop, int) else crop[0]
    return side, (resize if isinstance(resize, int) else resize[0]) - side


def hfcls_command(recipe_path, overrides, out: Path, in_memory: bool, fast: bool = False) -> list:
    """hfcls-train on the recipe; `fast`: in bf16 with channels_last, the zoo recipes' own settings
    where the hardware has bf16 (the peers keep the recipe's precision)."""
    return [
        sys.executable,
        "-m",
        "hfcls.cli.train",
        str(recipe_path),
        *overrides,
        "--work-dir",
        str(out),
        f"data.in_memory={str(in_memory).lower()}",
        "train.log_with=[]",
        "train.publish=false",
        *(["train.mixed_precision=bf16", "train.channels_last=true"] if fast else []),
    ]


def trainer_command(work: dict, out: Path) -> list:
    return [
        sys.executable,
        "-m",
        "hfcls.bench.peers.trainer",
        "--train-dir",
        work["train_dir"],
        "--val-dir",
        work["val_dir"],
        "--model-config",
        json.dumps(work["model"]),
        "--output-dir",
        str(out),
        "--epochs",
        str(work["epochs"]),
        "--batch-size",
        str(work["batch_size"]),
        "--lr",
        str(work["lr"]),
        "--weight-decay",
        str(work["weight_decay"]),
        "--warmup-epochs",
        str(work["warmup_epochs"]),
        "--workers",
        str(work["workers"]),
        "--size",
        str(work["size"]),
        "--pad",
        str(work["pad"]),
        "--mean",
        *map(str, work["mean"]),
        "--std",
        *map(str, work["std"]),
        "--seed",
        str(work["seed"]),
    ]


def timm_command(work: dict, train_py: Path, out: Path) -> list:
    model = work["model"]
    key = (tuple(model.get("depths", ())), tuple(model.get("hidden_sizes", ())), model.get("layer_type"))
    if key not in TIMM_RESNETS:
        raise HfclsError(
            f"the timm peer trains {', '.join(TIMM_RESNETS.values())}; the recipe's model.config "
            "is none of them (depths, hidden_sizes, layer_type)"
        )
    data_dir = Path(work["train_dir"]).parent
    device = [] if _cuda() else ["--device", "cpu", "--no-prefetcher"]
    return [
        sys.executable,
        str(train_py),
        "--data-dir",
        str(data_dir),
        "--train-split",
        Path(work["train_dir"]).name,
        "--val-split",
        Path(work["val_dir"]).name,
        "--model",
        TIMM_RESNETS[key],
        "--num-classes",
        str(len([p for p in Path(work["train_dir"]).iterdir() if p.is_dir()])),
        "--input-size",
        "3",
        str(work["size"]),
        str(work["size"]),
        "--crop-pct",
        "1.0",
        "--scale",
        "1",
        "1",
        "--ratio",
        "1",
        "1",
        "--hflip",
        "0",
        "--mean",
        *map(str, work["mean"]),
        "--std",
        *map(str, work["std"]),
        "--batch-size",
        str(work["batch_size"]),
        "--opt",
        "adamw",
        "--lr",
        str(work["lr"]),
        "--weight-decay",
        str(work["weight_decay"]),
        "--sched",
        "cosine",
        "--sched-on-updates",
        "--warmup-epochs",
        str(round(work["warmup_epochs"])),
        "--cooldown-epochs",
        "0",
        "--epochs",
        str(work["epochs"]),
        "--workers",
        str(work["workers"]),
        "--seed",
        str(work["seed"]),
        "--log-interval",
        "10",
        "--output",
        str(out),
        "--checkpoint-hist",
        "1",
        *device,
    ]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def has_bf16() -> bool:
    """Whether the device hfcls trains on here computes in bf16 itself, rather than emulating it."""
    from hfcls.engine.precision import default_device_type
    from hfcls.engine.precision import has_bf16 as device_has_bf16

    return device_has_bf16(default_device_type())


# ----------------------------------------------------------------------------- running and reading


def run_timed(command: list, env: dict, cwd=None, timeout: float = 3600) -> tuple:
    """(wall seconds, [(seconds since launch, line)]) of one command, stdout and stderr merged."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd, bufsize=1
    )
    lines = []
    for line in process.stdout:
        lines.append((time.perf_counter() - start, line.rstrip("\n")))
    status = process.wait(timeout=timeout)
    wall = time.perf_counter() - start
    if status != 0:
        last = next((text.strip() for _, text in reversed(lines) if text.strip()), "no output")
        raise HfclsError(f"{' '.join(command[:4])} ... failed with status {status}; its last line: {last}")
    return wall, lines


HFCLS_EPOCH = re.compile(r"epoch (\d+): (.*)")
KEY_VALUE = re.compile(r"(\w+)=([-\d.eE+]+)")


def read_hfcls(lines: list) -> dict:
    record = {"first_step": None, "epochs": []}
    for at, text in lines:
        if "first optimizer step" in text and record["first_step"] is None:
            record["first_step"] = at
        match = HFCLS_EPOCH.search(text)
        if match and "val_accuracy_top1" in text:
            values = {key: float(value) for key, value in KEY_VALUE.findall(match.group(2))}
            record["epochs"].append(
                {
                    "epoch": int(match.group(1)),
                    "end": at,
                    "top1": values["val_accuracy_top1"],
                    "images_per_sec": values["images_per_sec"],
                    "eval_time": values["eval_time"],
                }
            )
    return record


def read_trainer(lines: list) -> dict:
    record = {"first_step": None, "epochs": []}
    for at, text in lines:
        if not text.startswith('{"event"'):
            continue
        event = json.loads(text)
        if event["event"] == "first_step":
            record["first_step"] = at
        elif event["event"] == "epoch":
            record["epochs"].append(
                {
                    "epoch": event["epoch"],
                    "end": at,
                    "top1": event["top1"],
                    "images_per_sec": event["images"] / event["train_time"],
                    "eval_time": event["eval_time"],
                }
            )
    return record


TIMM_TRAIN = re.compile(r"Train: (\d+) \[\s*(\d+)/(\d+).*\(([\d.]+)s,\s*([\d.]+)/s\)")
TIMM_TEST = re.compile(r"Test: \[\s*(\d+)/(\d+)\].*Acc@1:\s*[\d.]+ \(\s*([\d.]+)\)")


def read_timm(lines: list) -> dict:
    """From timm's log lines: the first (batch 0 of epoch 0) Train line, each epoch's last Train line
    (its average rate) and last Test line (its average top-1)."""
    record = {"first_step": None, "epochs": []}
    rate, train_end = {}, {}
    for at, text in lines:
        train = TIMM_TRAIN.search(text)
        if train:
            epoch, batch, last = int(train.group(1)), int(train.group(2)), int(train.group(3))
            if record["first_step"] is None:
                record["first_step"] = at
            if batch == last - 1:
                rate[epoch], train_end[epoch] = float(train.group(5)), at
        test = TIMM_TEST.search(text)
        if test and test.group(1) == test.group(2):
            epoch = max(train_end)
            record["epochs"].append(
                {
                    "epoch": epoch + 1,
                    "end": at,
                    "top1": float(test.group(3)),
                    "images_per_sec": rate[epoch],
                    "eval_time": at - train_end[epoch],
                }
            )
    return record


def summary(wall: float, record: dict) -> dict:
    epochs = record["epochs"]
    if not epochs or record["first_step"] is None:
        raise HfclsError("a run finished without the lines its timings are read from (first step, evaluations)")
    steady = [e["images_per_sec"] for e in epochs[1:]] or [epochs[0]["images_per_sec"]]
    return {
        "wall": wall,
        "first_step": record["first_step"],
        "images_per_sec": statistics.median(steady),
        "eval_time": statistics.median(e["eval_time"] for e in epochs),
        "top1": epochs[-1]["top1"],
        "evaluations": [(e["end"], e["top1"]) for e in epochs],
    }


# ----------------------------------------------------------------------------- load and rounds


@contextmanager
def busy(processes: int):
    """`processes` busy loops competing for the cores while the block runs."""
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def tools(recipe, peers, timm_train, overrides=()) -> list:
    """(name, make command for an output folder, reader) of every tool compared; hfcls runs the
    recipe file with the same `overrides` that shaped `recipe`."""
    work = work_of(recipe)
    out = [
        ("hfcls, workers", lambda d: hfcls_command(recipe.source, overrides, d, False), read_hfcls),
        ("hfcls, in memory", lambda d: hfcls_command(recipe.source, overrides, d, True), read_hfcls),
    ]
    if has_bf16():
        out.append(
            ("hfcls, bf16 + NHWC", lambda d: hfcls_command(recipe.source, overrides, d, True, fast=True), read_hfcls)
        )
    if "trainer" in peers:
        out.append(("HF Trainer", lambda d: trainer_command(work, d), read_trainer))
    if "timm" in peers:
        if timm_train is None or not Path(timm_train).is_file():
            raise HfclsError("--peers timm needs --timm-train PATH: train.py of a pytorch-image-models checkout")
        out.append(("timm train.py", lambda d: timm_command(work, Path(timm_train), d), read_timm))
    return out


def compare(recipe, peers=PEERS, *, timm_train=None, rounds: int = 2, load: int = 0, overrides=()) -> dict:
    """Every tool's figures, best of `rounds` interleaved rounds, with `load` busy processes competing."""
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        raise HfclsError(f"--peers: unknown {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if timm_train is not None:  # the checkout's own timm package, as its train.py expects
        env["PYTHONPATH"] = os.pathsep.join([str(Path(timm_train).resolve().parent), env.get("PYTHONPATH", "")])
    check_full_batches(work_of(recipe))
    compared = tools(recipe, peers, timm_train, list(overrides))
    runs = {name: [] for name, _, _ in compared}
    with busy(load), tempfile.TemporaryDirectory() as scratch:
        for round_index in range(rounds):
            for index, (name, command, reader) in enumerate(compared):
                out = Path(scratch) / f"{round_index}-{index}"
                wall, lines = run_timed(command(out), env)
                runs[name].append(summary(wall, reader(lines)))
    return {"load": load, "rounds": rounds, "tools": {name: best(rows) for name, rows in runs.items()}, "runs": runs}


def best(rows: list) -> dict:
    """The best of each figure over the rounds; top-1 of the fastest round."""
    fastest = min(rows, key=lambda row: row["wall"])
    return {
        "wall": fastest["wall"],
        "first_step": min(r["first_step"] for r in rows),
        "images_per_sec": max(r["images_per_sec"] for r in rows),
        "eval_time": min(r["eval_time"] for r in rows),
        "top1": fastest["top1"],
        "evaluations": fastest["evaluations"],
    }


def time_to(evaluations: list, target: float) -> float | None:
    """Seconds from launch to the end of the first evaluation at or above `target` top-1."""
    return next((at for at, top1 in evaluations if top1 >= target), None)


def table(result: dict, target: float | None = None) -> str:
    rows = result["tools"]
    peer_walls = {name: row["wall"] for name, row in rows.items() if not name.startswith("hfcls")}
    lines = [
        f"{'tool':<18} {'wall s':>8} {'first step s':>13} {'images/s':>9} {'eval s':>7} {'top-1 %':>8}"
        + (f" {'to ' + str(target) + ' % s':>10}" if target is not None else "")
    ]
    for name, row in rows.items():
        reach = time_to(row["evaluations"], target) if target is not None else None
        lines.append(
            f"{name:<18} {row['wall']:>8.1f} {row['first_step']:>13.2f} {row['images_per_sec']:>9.0f} "
            f"{row['eval_time']:>7.2f} {row['top1']:>8.2f}"
            + ((f" {reach:>10.1f}" if reach is not None else f" {'never':>10}") if target is not None else "")
        )
    if peer_walls:
        fastest = min(peer_walls, key=peer_walls.get)
        for name, row in rows.items():
            if name.startswith("hfcls"):
                peer = rows[fastest]
                lines.append(
                    f"ratio {name} / {fastest}: {peer['wall'] / row['wall']:.2f}x wall, "
                    f"{row['images_per_sec'] / peer['images_per_sec']:.2f}x images/s, "
                    f"{peer['first_step'] / row['first_step']:.2f}x first step"
                )
    return "\n".join(lines)
