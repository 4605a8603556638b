"""hfcls-bench: images/s of a recipe's data path, training or evaluation, against the common baseline.

    hfcls-bench RECIPE [key=value ...] [--what data|train|eval] [--steps N] [--warmup N]
                [--baseline] [--synthetic] [--json OUT]

`--baseline` also runs the pipeline the Hugging Face examples teach, on the same
data, model and batch: per-sample PIL transforms through `with_transform`
ending in ToImage + ToDtype(float32, scale) + Normalize in the worker, fp32,
NCHW, a plain DataLoader (same worker count), torch's default optimizer kernels. Every speed-up is then a ratio
measured in one run. `--synthetic` feeds random uint8 batches from the device:
the compute-only ceiling. Step time is the median over the measured steps
(warm-up excluded, data waiting included); images/s is measured images over
the measured steps' total time. The variants run in turns (`--rounds`), so a
load that drifts on a shared machine weighs on all of them alike; each turn
starts a fresh loader, warms it up (`--warmup` steps) and shuts its workers
down after, so no variant's workers run during another's turn. Peak memory is
the PSS of this process plus its workers, sampled during the measured steps.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import threading
import time
import types
from contextlib import nullcontext
from pathlib import Path

from hfcls.errors import HfclsError, cli_entry
from hfcls.recipe import load_recipe

WHAT = ("data", "train", "eval")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="hfcls-bench", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", help="recipe YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="recipe overrides (YAML-typed)")
    parser.add_argument("--what", choices=WHAT, default="train",
                        help="data: the train input pipeline only; train: full training steps; eval: inference")
    parser.add_argument("--steps", type=int, default=30, help="measured steps per variant")
    parser.add_argument("--warmup", type=int, default=5,
                        help="unmeasured steps at the start of each turn (a fresh loader starting its workers)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="the measured steps are split into this many turns per variant, interleaved")
    parser.add_argument("--baseline", action="store_true", help="also run the Hugging Face examples' pipeline")
    parser.add_argument("--synthetic", action="store_true", help="also run on random on-device batches")
    parser.add_argument("--json", metavar="OUT", help="write the results to this JSON file")
    args = parser.parse_intermixed_args(argv)  # overrides may follow the options
    if args.steps < 1 or args.warmup < 0 or not 1 <= args.rounds <= args.steps:
        parser.error("--steps must be at least 1, --warmup at least 0, --rounds between 1 and --steps")
    return args


# ----------------------------------------------------------------------------- memory


class PeakMemory:
    """Peak memory of this process plus its children (DataLoader workers), sampled.

    PSS (proportional set size): pages shared between the workers (the Arrow
    memory map, torch itself) count once in the sum, unlike RSS. Read from
    /proc/PID/smaps_rollup, which costs ~0.2 ms a process where psutil's full
    smaps parse costs ~6 ms: the sampling must not slow what it measures.
    """

    def __init__(self, interval=0.2):
        import psutil

        self.process, self.interval, self.peak = psutil.Process(), interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        total = 0
        for process in [self.process, *self.process.children(recursive=True)]:
            try:
                total += _pss_bytes(process)
            except Exception:  # a worker that just exited
                pass
        self.peak = max(self.peak, total)

    def _run(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def _pss_bytes(process) -> int:
    try:
        with open(f"/proc/{process.pid}/smaps_rollup") as rollup:
            return next(int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:"))
    except FileNotFoundError:  # not Linux >= 4.14
        return process.memory_full_info().pss


# ----------------------------------------------------------------------------- pipelines


def baseline_loader(ds, specs, data, batch_size, shuffle, seed):
    """The Hugging Face examples' pipeline: PIL -> transforms -> float, normalised, per sample."""
    import torch
    from torchvision.transforms import v2

    from hfcls.data.loaders import worker_count
    from hfcls.data.transforms import build_pipeline

    pipeline = v2.Compose([*build_pipeline(specs).transforms, v2.ToImage(),
                           v2.ToDtype(torch.float32, scale=True), v2.Normalize(data.mean, data.std)])

    def preprocess(batch):
        return {"pixel_values": [pipeline(image.convert("RGB")) for image in batch["image"]],
                "labels": batch["label"]}

    def collate(samples):
        return {"pixel_values": torch.stack([s["pixel_values"] for s in samples]),
                "labels": torch.tensor([s["labels"] for s in samples])}

    return torch.utils.data.DataLoader(
        ds.with_transform(preprocess), batch_size=batch_size, shuffle=shuffle, collate_fn=collate,
        num_workers=worker_count(data), drop_last=shuffle, generator=torch.Generator().manual_seed(seed))


def hfcls_loader(recipe, dsets, split, batch_size, device):
    """What `hfcls.engine.train` iterates: the recipe's loaders, or the in-memory ones."""
    import datasets

    from hfcls.data.in_memory import in_memory_loaders
    from hfcls.data.loaders import attach_transforms, build_loader, pin_memory
    from hfcls.engine import build_train_loader

    data = recipe.data
    dsets = attach_transforms(datasets.DatasetDict({split: dsets[split]}), data)
    if data.in_memory:
        place = types.SimpleNamespace(device=device, process_index=0, num_processes=1)
        if split == "train":
            return in_memory_loaders(dsets, data, recipe.seed, place, recipe.train)[0]
        return in_memory_loaders({"val": dsets[split]}, data, recipe.seed, place)[1]
    pin = pin_memory(data, device)
    if split == "train":
        return build_train_loader(recipe, dsets[split], pin, process=(0, 1, device))[1]
    return build_loader(dsets[split], data, batch_size, False, recipe.seed, pin)


def synthetic_batches(shape, classes, device) -> list:
    """One random uint8 batch on the device, as a one-batch 'loader'."""
    import torch

    images = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
    labels = torch.randint(0, classes, (shape[0],), device=device)
    valid = torch.ones(shape[0], dtype=torch.bool, device=device)
    return [{"pixel_values": images, "labels": labels, "valid": valid, "bad_files": []}]


def endless(loader):
    """Batches across epochs, as training sees them."""
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


# ----------------------------------------------------------------------------- steps


class Step:
    """One measured unit of work on a batch: move it, then load / train / evaluate."""

    def __init__(self, what, model, optimizer, device, normalize, mixed_precision, channels_last):
        import torch

        self.what, self.model, self.optimizer, self.device = what, model, optimizer, device
        self.normalize, self.channels_last = normalize, channels_last
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mixed_precision)
        self.autocast = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()

    def inputs(self, batch):
        from hfcls.engine import model_inputs

        images = batch["pixel_values"].to(self.device, non_blocking=True)
        if self.normalize is None:  # the baseline: float, normalised and NCHW in the worker
            return images
        return model_inputs({"pixel_values": images}, self.normalize, self.channels_last)  # as training does

    def __call__(self, batch):
        import torch

        from hfcls.engine import classification_loss

        images = self.inputs(batch)
        if self.what == "data":
            return images
        if self.what == "eval":
            with torch.inference_mode(), self.autocast:
                return self.model(pixel_values=images).logits
        labels = batch["labels"].to(self.device, non_blocking=True)
        valid = batch.get("valid", torch.ones_like(labels, dtype=torch.bool)).to(self.device, non_blocking=True)
        with self.autocast:
            logits = self.model(pixel_values=images).logits
        loss = classification_loss(logits, labels, valid, 0.0)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()  # read by nobody: no host-device sync per step


class Timed:
    """One variant: its step, a factory of fresh batch streams, the times and memory measured."""

    def __init__(self, step, make_loader, device):
        self.step, self.make_loader, self.device = step, make_loader, device
        self.times, self.images, self.peak_mem, self.cuda_peak = [], 0, 0, 0

    def turn(self, warmup: int, count: int) -> None:
        """A fresh loader (its own workers), `warmup` steps unmeasured, `count` measured, then
        the workers shut down: no variant's workers run during another's turn."""
        import torch

        batches = endless(self.make_loader())
        try:
            self._run(batches, warmup, measured=False)
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            with PeakMemory() as memory:
                self._run(batches, count, measured=True)
            self.peak_mem = max(self.peak_mem, memory.peak)
            if self.device.type == "cuda":
                self.cuda_peak = max(self.cuda_peak, torch.cuda.max_memory_allocated())
        finally:
            batches.close()  # drops the last reference to the loader and its workers
            gc.collect()

    def _run(self, batches, count, measured):
        import torch

        for _ in range(count):
            start = time.perf_counter()
            batch = next(batches)
            self.step(batch)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            if measured:
                self.times.append(time.perf_counter() - start)
                self.images += len(batch["labels"])

    def result(self) -> dict:
        return {
            "images_per_sec": self.images / sum(self.times),
            "step_ms_median": 1000 * statistics.median(self.times),
            "peak_mem_mib": self.peak_mem / 2**20,
            "cuda_max_allocated_mib": self.cuda_peak / 2**20 if self.device.type == "cuda" else None,
            "measured_steps": len(self.times),
        }


def measure_interleaved(timed: list, steps: int, warmup: int, rounds: int) -> None:
    """Run the variants in turn, `rounds` times: a load that drifts (a shared machine)
    then weighs on every variant alike."""
    chunks = [steps // rounds + (i < steps % rounds) for i in range(rounds)]
    for chunk in chunks:
        for t in timed:
            t.turn(warmup, chunk)


# ----------------------------------------------------------------------------- variants


def variants(recipe, args) -> list:
    """(name, pipeline, mixed_precision, channels_last): baseline and model settings first."""
    train = recipe.train
    out = []
    if args.baseline:
        out.append(("baseline (HF examples)", "baseline", "no", False))
    data_path = "in-memory" if recipe.data.in_memory else "loader"
    out.append((f"hfcls {data_path}, fp32 NCHW", "hfcls", "no", False))
    if args.what != "data" and (train.mixed_precision != "no" or train.channels_last):
        settings = f"{train.mixed_precision if train.mixed_precision != 'no' else 'fp32'}" + \
                   (" channels_last" if train.channels_last else "")
        out.append((f"hfcls {data_path}, recipe ({settings})", "hfcls", train.mixed_precision, train.channels_last))
    if args.synthetic:
        out.append(("synthetic (compute only)", "synthetic", train.mixed_precision, train.channels_last))
    return out


def build_variant(recipe, dsets, names, args, variant, device) -> Timed:
    import torch

    from hfcls.data.loaders import worker_count
    from hfcls.data.transforms import Normalize
    from hfcls.models import build_model
    from hfcls.optim import build_optimizer

    name, pipeline, mixed_precision, channels_last = variant
    data, split = recipe.data, "train" if args.what in ("data", "train") else "val"
    train = split == "train"
    batch_size = data.batch_size if train else data.eval_batch_size or data.batch_size
    torch.manual_seed(recipe.seed)
    model = optimizer = None
    if args.what != "data":
        model = build_model(recipe.model, names).to(device).train(args.what == "train")
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(model, recipe.optim, fused=pipeline != "baseline") if args.what == "train" else None
    normalize = None if pipeline == "baseline" else Normalize(data.mean, data.std).to(device)
    step = Step(args.what, model, optimizer, device, normalize, mixed_precision, channels_last)
    if pipeline == "baseline":
        specs = data.train_pipeline if train else data.eval_pipeline
        make_loader = lambda: baseline_loader(dsets[split], specs, data, batch_size, train, recipe.seed)  # noqa: E731
    elif pipeline == "hfcls" and not data.in_memory:
        make_loader = lambda: hfcls_loader(recipe, dsets, split, batch_size, device)  # noqa: E731
    else:  # no workers: decoded (or made up) once
        loader = (hfcls_loader(recipe, dsets, split, batch_size, device) if pipeline == "hfcls"
                  else synthetic_batches(_batch_shape(recipe, dsets, split, batch_size, device), len(names), device))
        make_loader = lambda: loader  # noqa: E731
    timed = Timed(step, make_loader, device)
    timed.settings = {"variant": name, "pipeline": pipeline, "mixed_precision": mixed_precision,
                      "channels_last": channels_last, "batch_size": batch_size,
                      "num_workers": 0 if pipeline == "synthetic" or data.in_memory and pipeline == "hfcls"
                      else worker_count(data)}
    return timed


def _batch_shape(recipe, dsets, split, batch_size, device):
    sample = next(iter(hfcls_loader(recipe, dsets, split, batch_size, device)))
    return tuple(sample["pixel_values"].shape)


# ----------------------------------------------------------------------------- report


def machine() -> dict:
    import torch

    from hfcls.precision import cpu_has_bf16

    return {
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": _cpu_name() + (", bf16" if cpu_has_bf16() else ", no bf16"),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def report(info, settings, results) -> str:
    lines = [
        "machine: {platform}, {cpus} CPUs ({cpu}), torch {torch}, device {device}, "
        "load average {load_average[0]} {load_average[1]} {load_average[2]}".format(**info),
        "settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()),
        f"{'variant':<42} {'images/s':>10} {'step ms':>9} {'peak PSS MiB':>13} {'CUDA MiB':>9} {'workers':>8}",
    ]
    for r in results:
        cuda = f"{r['cuda_max_allocated_mib']:.0f}" if r["cuda_max_allocated_mib"] is not None else "-"
        lines.append(f"{r['variant']:<42} {r['images_per_sec']:>10.1f} {r['step_ms_median']:>9.1f} "
                     f"{r['peak_mem_mib']:>13.0f} {cuda:>9} {r['num_workers']:>8}")
    base = next((r for r in results if r["pipeline"] == "baseline"), None)
    for r in results:
        if base is not None and r is not base:
            lines.append(f"ratio {r['variant']} / baseline: {r['images_per_sec'] / base['images_per_sec']:.2f}x "
                         f"images/s, {base['step_ms_median'] / r['step_ms_median']:.2f}x median step")
    return "\n".join(lines)


@cli_entry
def cli(argv=None):
    args = parse_args(argv)
    recipe = load_recipe(args.recipe, args.overrides)
    import torch

    from hfcls.data.loaders import build_datasets, class_names

    split = "train" if args.what in ("data", "train") else "val"
    dsets = build_datasets(recipe.data, recipe.seed, tuple(dict.fromkeys(("train", split))))
    if split not in dsets:
        raise HfclsError(f"{args.recipe}: --what {args.what} needs a data.{split} source (or data.train_val_split)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    names = class_names(dsets["train"] if "train" in dsets else dsets[split])
    settings = {"recipe": args.recipe, "what": args.what, "split": split, "images": len(dsets[split]),
                "steps": args.steps, "warmup": args.warmup, "torch_threads": torch.get_num_threads(),
                "overrides": " ".join(args.overrides) or "none"}
    timed = [build_variant(recipe, dsets, names, args, v, device) for v in variants(recipe, args)]
    measure_interleaved(timed, args.steps, args.warmup, args.rounds)
    results = [{**t.settings, **t.result()} for t in timed]
    info = machine()
    print(report(info, settings, results))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "settings": settings, "results": results}, indent=2))
    return results


if __name__ == "__main__":
    cli()
