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
  for time-to-accuracy;
- decode_share: the share of the command's CPU time its child processes (the DataLoader
  workers: decoding and augmenting) spent, and worker_ms_per_image: their CPU milliseconds
  per image read (hfcls.bench.peers.cpu_time).

Every tool runs as it comes (fp32, NCHW) and, where the CPU or GPU has bf16, with its own best
switches: timm's `--amp --amp-dtype bfloat16 --channels-last`, the Trainer's `bf16=True`, hfcls's
zoo settings (bf16 + channels_last); hfcls also as its recipe is written where that asks for less
work per image (progressive resizing, evaluation at another size). Two kinds of work: small images
([Resize, RandomCrop], e.g. the digits at 32 px, where hfcls also runs in memory) and real sizes
(ImageNet's [RandomResizedCrop, flip] and [Resize, CenterCrop], e.g. the JPEG folder at 224).

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
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hfcls.bench.peers.cpu_time import ChildrenCpu, wait_and_split
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
    if optim.type not in ("adamw", "sgd") or optim.nesterov or schedule.type != "cosine" or recipe.model.config is None:
        raise HfclsError(
            "--peers compares AdamW or SGD (momentum, no Nesterov) with a cosine schedule on a model.config "
            f"architecture; the recipe has optim.type={optim.type}, schedule.type={schedule.type}"
        )
    return {
        "train_dir": folders[0]["path"],
        "val_dir": folders[1]["path"],
        "model": dict(recipe.model.config),
        "epochs": recipe.train.epochs,
        "batch_size": data.batch_size,
        "optim": optim.type,
        "lr": optim.lr,
        "momentum": optim.momentum,
        "weight_decay": optim.weight_decay,
        "warmup_epochs": schedule.warmup_epochs,
        "workers": data.num_workers if data.num_workers is not None else 2,
        **train_crop(data.train_pipeline),
        "eval_resize": eval_resize(data.eval_pipeline),
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


def train_crop(pipeline: list) -> dict:
    """{size, pad} of a [Resize(size + pad), RandomCrop(size)] train pipeline (small images), or {size,
    random_resized_crop} of ImageNet's [RandomResizedCrop(size), RandomHorizontalFlip] (real sizes)."""
    kinds = [spec.get("type") for spec in pipeline]
    if kinds == ["RandomResizedCrop", "RandomHorizontalFlip"] and set(pipeline[0]) <= {"type", "size"}:
        return {"size": side(pipeline[0]["size"]), "pad": 0, "random_resized_crop": True}
    if kinds != ["Resize", "RandomCrop"]:
        raise HfclsError(
            "--peers needs a train pipeline of [Resize, RandomCrop] or [RandomResizedCrop(size), RandomHorizontalFlip] "
            f"(what every peer can be told); the recipe has {kinds}"
        )
    resize, crop = (spec["size"] for spec in pipeline)
    return {"size": side(crop), "pad": side(resize) - side(crop), "random_resized_crop": False}


def eval_resize(pipeline: list) -> int:
    """R of the eval pipeline [Resize(R), CenterCrop(C)] (or [Resize(R)]): timm's crop_pct is C / R."""
    return side(pipeline[0]["size"])


def side(size) -> int:
    return size if isinstance(size, int) else size[0]


# hfcls's keys that change the work per image (hfcls.recipe.resolution); the as-it-comes rows leave them out.
LESS_WORK = ("data.progressive_resizing", "data.eval_size")


def hfcls_command(
    recipe_path, overrides, out: Path, in_memory: bool, fast: bool = False, as_written: bool = False
) -> list:
    """hfcls-train on the recipe; `fast`: in bf16 with channels_last, the zoo recipes' own settings
    where the hardware has bf16; `as_written`: the recipe's own settings, whatever they are; otherwise
    fp32 NCHW at the pipeline's sides (the peers' work as they come)."""
    if as_written:
        switches = []
    else:
        switches = (
            ["train.mixed_precision=bf16", "train.channels_last=true"]
            if fast
            else ["train.mixed_precision=no", "train.channels_last=false"]
        )
        switches += [f"{key}=null" for key in LESS_WORK]
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
        *switches,
    ]


def trainer_command(work: dict, out: Path, fast: bool = False) -> list:
    """The Trainer peer; `fast`: with its own best switch on a CPU or GPU with bf16 (bf16=True)."""
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
        "--optim",
        work["optim"],
        "--lr",
        str(work["lr"]),
        "--momentum",
        str(work["momentum"]),
        "--weight-decay",
        str(work["weight_decay"]),
        "--warmup-epochs",
        str(work["warmup_epochs"]),
        "--workers",
        str(work["workers"]),
        "--size",
        str(work["size"]),
        *(["--random-resized-crop"] if work["random_resized_crop"] else ["--pad", str(work["pad"])]),
        "--eval-resize",
        str(work["eval_resize"]),
        "--mean",
        *map(str, work["mean"]),
        "--std",
        *map(str, work["std"]),
        "--seed",
        str(work["seed"]),
        *(["--bf16"] if fast else []),
    ]


def timm_command(work: dict, train_py: Path, out: Path, fast: bool = False) -> list:
    """timm's train.py told the work; `fast`: with its own best switches (bf16 autocast, channels_last).
    Its defaults that would add work (label smoothing 0.1, colour jitter 0.4, a random train
    interpolation) are set to the recipe's: none, none, bilinear."""
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
        str(work["size"] / work["eval_resize"]),
        "--interpolation",
        "bilinear",
        "--train-interpolation",
        "bilinear",
        "--smoothing",
        "0",
        "--color-jitter",
        "0",
        # RandomResizedCrop's defaults and a flip, or a crop of the whole (padded) image without flips
        *([] if work["random_resized_crop"] else ["--scale", "1", "1", "--ratio", "1", "1", "--hflip", "0"]),
        "--mean",
        *map(str, work["mean"]),
        "--std",
        *map(str, work["std"]),
        "--batch-size",
        str(work["batch_size"]),
        "--opt",
        work["optim"],
        *(["--momentum", str(work["momentum"])] if work["optim"] == "sgd" else []),
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
        *(["--amp", "--amp-dtype", "bfloat16", "--channels-last"] if fast else []),
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
    """(wall seconds, [(seconds since launch, line)], {main, workers}: CPU seconds) of one command,
    stdout and stderr merged."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd, bufsize=1
    )
    sampler = ChildrenCpu(process.pid)
    deadline = threading.Timer(timeout, process.kill)  # a hung tool must not hang the benchmark
    deadline.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append((time.perf_counter() - start, line.rstrip("\n")))
        status, main, workers = wait_and_split(process, sampler)
    finally:
        deadline.cancel()
    wall = time.perf_counter() - start
    if wall >= timeout and status != 0:
        raise HfclsError(f"{' '.join(command[:4])} ... ran past {timeout:.0f} s and was stopped")
    if status != 0:
        last = next((text.strip() for _, text in reversed(lines) if text.strip()), "no output")
        raise HfclsError(f"{' '.join(command[:4])} ... failed with status {status}; its last line: {last}")
    return wall, lines, {"main": main, "workers": workers}


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


def summary(wall: float, record: dict, cpu: dict, images: int) -> dict:
    """One run's figures; `cpu`: its CPU seconds (run_timed), `images`: the images it read (training and
    evaluation, every epoch), for its workers' CPU time per image."""
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
        "cpu_main": cpu["main"],
        "cpu_workers": cpu["workers"],
        "decode_share": cpu["workers"] / (cpu["main"] + cpu["workers"]),
        "worker_ms_per_image": 1000 * cpu["workers"] / images,
    }


def images_read(work: dict) -> int:
    """The images a run of `work` reads: every training and validation image, every epoch."""
    count = sum(sum(1 for p in Path(work[key]).rglob("*") if p.is_file()) for key in ("train_dir", "val_dir"))
    return count * work["epochs"]


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


@dataclass
class Tool:
    name: str
    command: object  # output folder -> the command line
    reader: object  # its output lines -> a record for `summary`
    peer: bool  # another tool (not hfcls)
    fp32: bool  # at fp32, NCHW: as the tool comes


def tools(recipe, peers, timm_train, overrides=()) -> list:
    """Every Tool compared: hfcls, the Trainer and timm each as they come (fp32) and with their own best
    switches where the hardware has bf16; hfcls also as the recipe is written where it asks for less work
    per image (LESS_WORK). hfcls runs the recipe file with the same `overrides` that shaped `recipe`;
    in memory too where its pipeline allows (small images, no RandomResizedCrop)."""
    work, source, fast = work_of(recipe), recipe.source, has_bf16()
    in_memory = not work["random_resized_crop"]
    out = [Tool("hfcls, workers", lambda d: hfcls_command(source, overrides, d, False), read_hfcls, False, True)]
    if in_memory:
        out.append(
            Tool("hfcls, in memory", lambda d: hfcls_command(source, overrides, d, True), read_hfcls, False, True)
        )
    if fast:
        out.append(
            Tool(
                "hfcls, bf16 + NHWC",
                lambda d: hfcls_command(source, overrides, d, in_memory, fast=True),
                read_hfcls,
                False,
                False,
            )
        )
    if any(value_of(recipe, key) is not None for key in LESS_WORK):
        out.append(
            Tool(
                "hfcls, recipe",
                lambda d: hfcls_command(source, overrides, d, recipe.data.in_memory, as_written=True),
                read_hfcls,
                False,
                False,
            )
        )
    if "trainer" in peers:
        out.append(Tool("HF Trainer", lambda d: trainer_command(work, d), read_trainer, True, True))
        if fast:
            out.append(
                Tool("HF Trainer, bf16", lambda d: trainer_command(work, d, fast=True), read_trainer, True, False)
            )
    if "timm" in peers:
        if timm_train is None or not Path(timm_train).is_file():
            raise HfclsError("--peers timm needs --timm-train PATH: train.py of a pytorch-image-models checkout")
        out.append(Tool("timm train.py", lambda d: timm_command(work, Path(timm_train), d), read_timm, True, True))
        if fast:
            out.append(
                Tool(
                    "timm, bf16 + NHWC",
                    lambda d: timm_command(work, Path(timm_train), d, fast=True),
                    read_timm,
                    True,
                    False,
                )
            )
    return out


def value_of(recipe, key: str):
    section, name = key.split(".")
    return getattr(getattr(recipe, section), name)


def compare(recipe, peers=PEERS, *, timm_train=None, rounds: int = 2, load: int = 0, overrides=()) -> dict:
    """Every tool's figures, best of `rounds` interleaved rounds, with `load` busy processes competing."""
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        raise HfclsError(f"--peers: unknown {', '.join(unknown)}; choose from {', '.join(PEERS)}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if timm_train is not None:  # the checkout's own timm package, as its train.py expects
        env["PYTHONPATH"] = os.pathsep.join([str(Path(timm_train).resolve().parent), env.get("PYTHONPATH", "")])
    check_full_batches(work_of(recipe))
    compared, images = tools(recipe, peers, timm_train, list(overrides)), images_read(work_of(recipe))
    runs = {tool.name: [] for tool in compared}
    with busy(load), tempfile.TemporaryDirectory() as scratch:
        for round_index in range(rounds):
            for index, tool in enumerate(compared):
                out = Path(scratch) / f"{round_index}-{index}"
                wall, lines, cpu = run_timed(tool.command(out), env)
                runs[tool.name].append(summary(wall, tool.reader(lines), cpu, images))
    figures = {tool.name: {**best(runs[tool.name]), "peer": tool.peer, "fp32": tool.fp32} for tool in compared}
    return {"load": load, "rounds": rounds, "tools": figures, "runs": runs}


def best(rows: list) -> dict:
    """The best of each figure over the rounds; top-1 and CPU split of the fastest round."""
    fastest = min(rows, key=lambda row: row["wall"])
    return {
        "wall": fastest["wall"],
        "first_step": min(r["first_step"] for r in rows),
        "images_per_sec": max(r["images_per_sec"] for r in rows),
        "eval_time": min(r["eval_time"] for r in rows),
        "top1": fastest["top1"],
        "evaluations": fastest["evaluations"],
        "decode_share": fastest["decode_share"],
        "worker_ms_per_image": min(r["worker_ms_per_image"] for r in rows),
    }


def time_to(evaluations: list, target: float) -> float | None:
    """Seconds from launch to the end of the first evaluation at or above `target` top-1."""
    return next((at for at, top1 in evaluations if top1 >= target), None)


def table(result: dict, target: float | None = None) -> str:
    """The figures of every tool, then each hfcls row's ratios to the fastest peer (with its own best
    switches) and, at fp32, to the fastest fp32 peer."""
    rows = result["tools"]
    lines = [
        f"{'tool':<20} {'wall s':>7} {'first step s':>12} {'images/s':>9} {'eval s':>7} {'top-1 %':>8} "
        f"{'decode CPU %':>12} {'worker ms/img':>13}" + (f" {'to ' + str(target) + ' % s':>10}" if target else "")
    ]
    for name, row in rows.items():
        reach = time_to(row["evaluations"], target) if target is not None else None
        lines.append(
            f"{name:<20} {row['wall']:>7.1f} {row['first_step']:>12.2f} {row['images_per_sec']:>9.1f} "
            f"{row['eval_time']:>7.2f} {row['top1']:>8.2f} {100 * row['decode_share']:>12.1f} "
            f"{row['worker_ms_per_image']:>13.2f}"
            + ((f" {reach:>10.1f}" if reach is not None else f" {'never':>10}") if target is not None else "")
        )
    for label, peers in (
        ("", [n for n, r in rows.items() if r["peer"]]),
        ("fp32 ", [n for n, r in rows.items() if r["peer"] and r["fp32"]]),
    ):
        if not peers:
            continue
        peer_name = min(peers, key=lambda name: rows[name]["wall"])
        peer = rows[peer_name]
        for name, row in rows.items():
            if not row["peer"] and (not label or row["fp32"]):
                lines.append(
                    f"{label}ratio {name} / {peer_name}: {peer['wall'] / row['wall']:.2f}x wall, "
                    f"{row['images_per_sec'] / peer['images_per_sec']:.2f}x images/s, "
                    f"{peer['first_step'] / row['first_step']:.2f}x first step"
                )
    return "\n".join(lines)
