"""hfcls-bench's measurements: images/s of a recipe's data path, training or evaluation,
against the baseline the Hugging Face examples teach (hfcls.bench.baseline).

What is timed for hfcls is the engine's own: the run `hfcls.engine.setup.build_run`
builds (loaders from the data door, the prepared model, the optimizer) and one
`hfcls.engine.steps.train_step` or `hfcls.predict.forward.forward_batch` per batch. `synthetic` feeds
random uint8 batches from the device to the same step: the compute-only ceiling,
and each variant at its settings is reported as a fraction of it. Step time is
the median over the measured steps (warm-up excluded, data waiting included);
images/s is measured images over the measured steps' wall time. The device is
synchronised once after a turn's steps, not after each: training does not wait
for its steps, and a wait would stop this process from preparing the next batch
(the on-device decoder's work) while the GPU computes. The data wait is the share
of that time spent in `next(batches)`; on CUDA, the GPU idle share is the time the
GPU did not spend in the steps themselves (CUDA events around each): waiting for
a batch, or decoding it. The variants run in turns (`rounds`), so a load that
drifts on a shared machine weighs on all of them alike; each turn builds its
variant afresh (its own Accelerator and loader workers), warms it up and shuts
it down after, so no variant's workers run during another's turn. Peak memory
is the PSS of this process plus its workers, sampled during the measured steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import platform
import statistics
import threading
import time

import torch

from hfcls.artifacts.loading import load_predictor
from hfcls.bench.baseline import BaselineStep, baseline_loader, baseline_optimizer
from hfcls.data.build import build_datasets, build_eval_loader, build_train_loader, class_names, worker_count
from hfcls.engine.precision import cpu_has_bf16
from hfcls.engine.setup import accelerator_session, build_run
from hfcls.engine.steps import train_step
from hfcls.errors import HfclsError
from hfcls.extras import optional_import
from hfcls.labels import problem_type_of_model
from hfcls.models import build_model
from hfcls.predict.forward import forward_batch
from hfcls.predict.inputs import recipe_inputs

WHAT = ("data", "train", "eval")


# ----------------------------------------------------------------------------- memory


class PeakMemory:
    """Peak memory of this process plus its children (DataLoader workers), sampled.

    PSS (proportional set size): pages shared between the workers (the Arrow
    memory map, torch itself) count once in the sum, unlike RSS. Read from
    /proc/PID/smaps_rollup, which costs ~0.2 ms a process where psutil's full
    smaps parse costs ~6 ms: the sampling must not slow what it measures.
    """

    def __init__(self, interval=0.2):
        psutil = optional_import("psutil", "bench", "hfcls-bench's memory reading")
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


# ----------------------------------------------------------------------------- variants


@dataclasses.dataclass
class Variant:
    """One thing to time: a name, how it runs (baseline, hfcls or synthetic) and the recipe it runs."""

    name: str
    pipeline: str  # "baseline", "hfcls" or "synthetic"
    recipe: object
    model: str | None = None  # an artifact to evaluate instead of the recipe's model (--models)


def variants(recipe, what: str, baseline: bool, synthetic: bool, models=()) -> list:
    """The baseline first, then hfcls at fp32 NCHW, at the recipe's own settings, and synthetic; with `models`,
    hfcls's evaluation of each of those artifacts (a PyTorch folder, its .onnx float32 and int8 graphs...)."""
    train = recipe.train
    plain = dataclasses.replace(recipe, train=dataclasses.replace(train, mixed_precision="no", channels_last=False))
    data = recipe.data
    data_path = "in-memory" if data.in_memory else "loader" if data.decode == "workers" else f"decode {data.decode}"
    if models:
        return [Variant(f"hfcls {data_path}, {model}", "hfcls", plain, model=str(model)) for model in models]
    out = [Variant("baseline (HF examples)", "baseline", plain)] if baseline else []
    out.append(Variant(f"hfcls {data_path}, fp32 NCHW", "hfcls", plain))
    if what != "data" and (train.mixed_precision != "no" or train.channels_last):
        settings = (train.mixed_precision if train.mixed_precision != "no" else "fp32") + (
            " channels_last" if train.channels_last else ""
        )
        out.append(Variant(f"hfcls {data_path}, recipe ({settings})", "hfcls", recipe))
    if synthetic:
        out.append(Variant("synthetic (compute only)", "synthetic", recipe))
    return out


@contextlib.contextmanager
def opened(variant: Variant, what: str, split: str):
    """(step, batches) of one turn of `variant`; everything it built (loader workers, the
    Accelerator) is released after, so no variant's workers run during another's turn."""
    with contextlib.ExitStack() as stack:
        if variant.pipeline == "baseline":
            step, batches = baseline_turn(variant.recipe, what, split)
        else:
            accelerator = stack.enter_context(accelerator_session(variant.recipe))
            step, loader, classes = hfcls_turn(variant.recipe, what, split, accelerator, variant.model)
            batches = endless(loader)
            if variant.pipeline == "synthetic":
                real, batches = batches, endless(synthetic_batches(next(batches), classes, accelerator.device))
                real.close()  # its workers stop now
        stack.callback(batches.close)
        yield step, batches


def hfcls_turn(recipe, what: str, split: str, accelerator, model_path: str | None = None):
    """(step, loader, class count): the engine's step and the data door's loader, as training
    or evaluation uses them; `model_path`: an artifact evaluated in place of the recipe's model."""
    if what == "train":
        run = build_run(recipe, None, accelerator, validate=False)
        run.model.train()
        return (lambda batch: train_step(run, batch)), run.train_loader, len(run.class_names)
    dsets = build_datasets(recipe.data, recipe.seed, tuple(dict.fromkeys(("train", split))))
    names = class_names(dsets["train"] if "train" in dsets else dsets[split])
    inputs = recipe_inputs(recipe, accelerator.device)
    if what == "data":
        loader = build_train_loader(recipe, dsets["train"], accelerator)
        return (lambda batch: inputs(batch["pixel_values"])), loader, len(names)
    model = build_model(recipe.model, names) if model_path is None else load_predictor(model_path, recipe=recipe)
    problem_type = problem_type_of_model(model)
    model = accelerator.prepare(inputs.place(model)).eval()

    def step(batch):
        with torch.inference_mode():
            return forward_batch(model, batch["pixel_values"], inputs, problem_type)

    return step, build_eval_loader(recipe.data, dsets[split], accelerator, recipe.seed), len(names)


def baseline_turn(recipe, what: str, split: str):
    data = recipe.data
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dsets = build_datasets(data, recipe.seed, tuple(dict.fromkeys(("train", split))))
    torch.manual_seed(recipe.seed)
    model = optimizer = None
    if what != "data":
        model = build_model(recipe.model, class_names(dsets["train"] if "train" in dsets else dsets[split]))
        model = model.to(device).train(what == "train")
        optimizer = baseline_optimizer(model, recipe.optim) if what == "train" else None
    training = split == "train"
    specs = data.train_pipeline if training else data.eval_pipeline
    batch_size = data.batch_size if training else data.eval_batch_size or data.batch_size
    loader = baseline_loader(dsets[split], specs, data, batch_size, training, recipe.seed)
    return BaselineStep(what, model, optimizer, device), endless(loader)


def synthetic_batches(real: dict, classes: int, device) -> list:
    """One random uint8 batch on the device, shaped as a real one, as a one-batch 'loader'."""
    shape = tuple(real["pixel_values"].shape)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
    labels = torch.randint(0, classes, (shape[0],), device=device)
    if real["labels"].ndim == 2:  # multi-hot vectors of a multi-label recipe
        labels = torch.randint(0, 2, real["labels"].shape, device=device).float()
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


# ----------------------------------------------------------------------------- timing


class GpuClock:
    """The GPU time of the steps timed in `step()` blocks, from CUDA events (read after a synchronize)."""

    def __init__(self):
        self.events = []

    @contextlib.contextmanager
    def step(self):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        yield
        end.record()
        self.events.append((start, end))

    def seconds(self) -> float:
        return sum(start.elapsed_time(end) for start, end in self.events) / 1000


class Timed:
    """One variant's measured steps and memory, over its turns."""

    def __init__(self, variant: Variant, what: str, split: str):
        self.variant, self.what, self.split = variant, what, split
        self.times, self.waits, self.images, self.peak_mem, self.cuda_peak = [], [], 0, 0, 0
        self.wall, self.gpu_busy = 0.0, 0.0

    def turn(self, warmup: int, count: int) -> None:
        """Build the variant, run `warmup` steps unmeasured and `count` measured, release it."""
        cuda = torch.cuda.is_available()
        with opened(self.variant, self.what, self.split) as (step, batches):
            self._run(step, batches, warmup, measured=False)
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            with PeakMemory() as memory:
                self._run(step, batches, count, measured=True)
            self.peak_mem = max(self.peak_mem, memory.peak)
            if cuda:
                self.cuda_peak = max(self.cuda_peak, torch.cuda.max_memory_allocated())
        gc.collect()

    def _run(self, step, batches, count, measured):
        cuda = torch.cuda.is_available()
        clock = GpuClock() if cuda else None
        started = time.perf_counter()
        for _ in range(count):
            start = time.perf_counter()
            batch = next(batches)
            waited = time.perf_counter() - start
            with clock.step() if cuda else contextlib.nullcontext():
                step(batch)
            if measured:
                self.times.append(time.perf_counter() - start)
                self.waits.append(waited)
                self.images += len(batch["labels"])
        if cuda:
            torch.cuda.synchronize()  # once: the steps ran ahead of the GPU, as in training
        if measured:
            self.wall += time.perf_counter() - started
            self.gpu_busy += clock.seconds() if cuda else 0.0

    def result(self) -> dict:
        data = self.variant.recipe.data
        return {
            "variant": self.variant.name,
            "pipeline": self.variant.pipeline,
            "mixed_precision": self.variant.recipe.train.mixed_precision,
            "channels_last": self.variant.recipe.train.channels_last,
            "batch_size": data.batch_size if self.split == "train" else data.eval_batch_size or data.batch_size,
            "num_workers": 0
            if self.variant.pipeline == "synthetic" or data.in_memory and self.variant.pipeline == "hfcls"
            else worker_count(data),
            "images_per_sec": self.images / self.wall,
            "step_ms_median": 1000 * statistics.median(self.times),
            "data_wait_fraction": sum(self.waits) / self.wall,
            "gpu_idle_fraction": max(0.0, 1 - self.gpu_busy / self.wall) if torch.cuda.is_available() else None,
            "peak_mem_mib": self.peak_mem / 2**20,
            "cuda_max_allocated_mib": self.cuda_peak / 2**20 if torch.cuda.is_available() else None,
            "measured_steps": len(self.times),
        }


def measure_interleaved(timed: list, steps: int, warmup: int, rounds: int) -> None:
    """Run the variants in turn, `rounds` times: a load that drifts (a shared machine)
    then weighs on every variant alike."""
    chunks = [steps // rounds + (i < steps % rounds) for i in range(rounds)]
    for chunk in chunks:
        for t in timed:
            t.turn(warmup, chunk)


def bench(
    recipe,
    what: str = "train",
    *,
    steps: int = 30,
    warmup: int = 5,
    rounds: int = 3,
    baseline: bool = False,
    synthetic: bool = False,
    models=(),
) -> dict:
    """Measure the variants in interleaved turns; {"machine", "settings", "results"}. `models`: artifacts
    evaluated on the recipe's eval split in place of its model (what eval only)."""
    if what not in WHAT:
        raise HfclsError(f"what must be one of {', '.join(WHAT)}, got {what!r}", param="what")
    if models and what != "eval":
        raise HfclsError(f"models are evaluated: use what eval with them, not {what}", param="models")
    split = "train" if what in ("data", "train") else "val"
    if getattr(recipe.data, split) is None and not (split == "val" and recipe.data.train_val_split):
        raise HfclsError(
            f"what {what} needs a data.{split} source (or data.train_val_split), which {recipe.source} has not",
            param="what",
        )
    settings = {
        "recipe": recipe.source,
        "what": what,
        "split": split,
        "steps": steps,
        "warmup": warmup,
        "rounds": rounds,
        "torch_threads": torch.get_num_threads(),
    }
    timed = [Timed(v, what, split) for v in variants(recipe, what, baseline, synthetic, models)]
    measure_interleaved(timed, steps, warmup, rounds)
    results = [t.result() for t in timed]
    for result in results:
        result["fraction_of_synthetic"] = fraction_of_synthetic(result, results)
    return {"machine": machine(), "settings": settings, "results": results}


def fraction_of_synthetic(result: dict, results: list) -> float | None:
    """images/s as a fraction of the compute-only images/s at the same precision and memory format."""
    same = ("mixed_precision", "channels_last")
    ceiling = next((r for r in results if r["pipeline"] == "synthetic" and all(r[k] == result[k] for k in same)), None)
    if ceiling is None or result is ceiling:
        return None
    return result["images_per_sec"] / ceiling["images_per_sec"]


# ----------------------------------------------------------------------------- report


def machine() -> dict:
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
        f"{'variant':<46} {'images/s':>10} {'step ms':>9} {'peak PSS MiB':>13} {'CUDA MiB':>9} {'workers':>8} "
        f"{'data wait':>10} {'GPU idle':>9}",
    ]
    for r in results:
        cuda = f"{r['cuda_max_allocated_mib']:.0f}" if r["cuda_max_allocated_mib"] is not None else "-"
        idle = f"{r['gpu_idle_fraction']:.0%}" if r["gpu_idle_fraction"] is not None else "-"
        lines.append(
            f"{r['variant']:<46} {r['images_per_sec']:>10.1f} {r['step_ms_median']:>9.1f} "
            f"{r['peak_mem_mib']:>13.0f} {cuda:>9} {r['num_workers']:>8} {r['data_wait_fraction']:>10.0%} "
            f"{idle:>9}"
        )
    for r in results:
        if r["fraction_of_synthetic"] is not None:
            lines.append(
                f"real / synthetic {r['variant']}: {r['fraction_of_synthetic']:.0%} of the compute-only images/s"
            )
    base = next((r for r in results if r["pipeline"] == "baseline"), None)
    for r in results:
        if base is not None and r is not base:
            lines.append(
                f"ratio {r['variant']} / baseline: {r['images_per_sec'] / base['images_per_sec']:.2f}x "
                f"images/s, {base['step_ms_median'] / r['step_ms_median']:.2f}x median step"
            )
    return "\n".join(lines)
