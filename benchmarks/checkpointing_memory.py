"""What train.gradient_checkpointing saves: the peak memory of a training step, with it and without.

    python benchmarks/checkpointing_memory.py                      # ViT-B/16 at 224, batch 8, CPU
    python benchmarks/checkpointing_memory.py --batch 8 --steps 3 --out result.json

Each setting runs in a fresh process (so neither inherits the other's freed memory) and builds the
model as training does: the recipe's model (recipes/_base_/models/vit-base-p16.yaml, random init), the
adaptation (hfcls.engine.setup.adapt_model: gradient checkpointing on or off) and AdamW with hfcls's
parameter groups. The first step allocates the optimizer's state; then the gradients are freed and
every later step is measured: the resident memory (RSS) sampled every millisecond from a thread, its
peak above the RSS before the step (what the step adds: the activations kept for the backward pass,
the gradients, temporaries), and the process's peak RSS (ru_maxrss). glibc is told to map every
block over 64 KiB on its own and to give freed memory back at once (MALLOC_MMAP_THRESHOLD_,
MALLOC_TRIM_THRESHOLD_), so the RSS follows the tensors alive rather than what the allocator kept.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def measure(checkpointing: bool, batch: int, size: int, steps: int) -> dict:
    import psutil
    import torch

    from hfcls.engine.optim import build_optimizer
    from hfcls.engine.setup import adapt_model
    from hfcls.models import build_model
    from hfcls.recipe import load_recipe

    recipe = load_recipe(
        REPO / "recipes" / "imagenet" / "vit-base-p16_64xb64_in1k.yaml",
        [f"train.gradient_checkpointing={str(checkpointing).lower()}", "train.mixed_precision=no"],
    )
    torch.manual_seed(0)
    model = adapt_model(build_model(recipe.model, [str(i) for i in range(1000)]), recipe.train, 1, "cpu").train()
    optimizer = build_optimizer(model, recipe.optim)
    images, labels = torch.randn(batch, 3, size, size), torch.randint(0, 1000, (batch,))
    process, peaks, times = psutil.Process(), [], []

    def step():
        model(pixel_values=images, labels=labels).loss.backward()
        optimizer.step()

    step()  # the optimizer's state is allocated here
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        before = process.memory_info().rss
        seconds, peak = peak_rss_during(step, process)
        times.append(seconds)
        peaks.append((peak - before) / 2**20)
    return {
        "gradient_checkpointing": checkpointing,
        "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "step_peak_above_start_MiB": round(max(peaks), 1),
        "process_peak_rss_MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "step_s": round(min(times), 2),
        "torch_threads": torch.get_num_threads(),
    }


def peak_rss_during(work, process) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of `work()`, the RSS sampled every millisecond from a thread."""
    peak, done = [process.memory_info().rss], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.001)

    sampler = threading.Thread(target=sample)
    sampler.start()
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return seconds, max(peak[0], process.memory_info().rss)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=2, help="measured steps after the first")
    parser.add_argument("--out", help="write the results as JSON here too")
    parser.add_argument("--one", choices=("on", "off"), help=argparse.SUPPRESS)  # a child process's setting
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(measure(args.one == "on", args.batch, args.size, args.steps)))
        return
    rows = []
    for setting in ("off", "on"):
        child = [sys.executable, __file__, "--one", setting, "--batch", str(args.batch), "--size", str(args.size)]
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
        done = subprocess.run([*child, "--steps", str(args.steps)], capture_output=True, text=True, check=True, env=env)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    off, on = rows
    saved = off["step_peak_above_start_MiB"] - on["step_peak_above_start_MiB"]
    print(f"ViT-B/16 ({off['params_M']} M parameters), {args.size} px, batch {args.batch}, CPU, fp32, AdamW:")
    print("| gradient checkpointing | step's peak above its start | process peak RSS | step time |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {'on' if row['gradient_checkpointing'] else 'off'} | {row['step_peak_above_start_MiB']:.0f} MiB "
            f"| {row['process_peak_rss_MiB']:.0f} MiB | {row['step_s']:.1f} s |"
        )
    print(
        f"saved: {saved:.0f} MiB of the step's peak ({saved / off['step_peak_above_start_MiB']:.0%}), "
        f"{off['process_peak_rss_MiB'] - on['process_peak_rss_MiB']:.0f} MiB of the process's; "
        f"step time x{on['step_s'] / off['step_s']:.2f}"
    )
    if args.out:
        Path(args.out).write_text(json.dumps({"batch": args.batch, "size": args.size, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
