"""Issue 28's fp32 target in whole commands: hfcls and timm's train.py in fp32, each NCHW (as the tools
come) and NHWC (channels_last: the zoo's memory format, which a CPU without bf16 trains fp32 in), on
the peer work of a recipe, run in a mirrored order (A B C D D C B A) so that a load drifting across
the session weighs on every variant alike.

    python benchmarks/fp32_runs.py benchmarks/recipes/resnet18_jpeg_peers.yaml [key=value ...] --timm-train ../timm/train.py

Each run is the command `hfcls-bench --peers` runs for that row (hfcls.bench.peers.compare), read the
same way; the table gives every run's wall seconds, then each variant's mean and the ratios of the
means (the peer's wall over hfcls's: above 1 is hfcls faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from hfcls.bench.peers.compare import (
    LESS_WORK,
    hfcls_command,
    images_read,
    read_hfcls,
    read_timm,
    run_timed,
    summary,
    timm_command,
    work_of,
)
from hfcls.bench.throughput import machine
from hfcls.recipe import load_recipe


def variants(recipe, recipe_path: str, overrides: list, timm_train: Path) -> dict:
    """{name: (output folder -> command, reader)} of the four fp32 runs."""
    work = work_of(recipe)
    nhwc_hfcls = ["train.channels_last=true"]  # after hfcls_command's own switches: the later one wins

    def hfcls(nhwc):
        return lambda out: hfcls_command(recipe_path, overrides, out, False) + (nhwc_hfcls if nhwc else [])

    def timm(nhwc):
        return lambda out: timm_command(work, timm_train, out) + (["--channels-last"] if nhwc else [])

    return {
        "hfcls, fp32 NCHW": (hfcls(False), read_hfcls),
        "timm, fp32 NCHW": (timm(False), read_timm),
        "hfcls, fp32 NHWC": (hfcls(True), read_hfcls),
        "timm, fp32 NHWC": (timm(True), read_timm),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value")
    parser.add_argument("--timm-train", type=Path, required=True, help="train.py of a pytorch-image-models checkout")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_intermixed_args(argv)
    recipe = load_recipe(args.recipe, [*args.overrides, *(f"{key}=null" for key in LESS_WORK)])
    runs = variants(recipe, args.recipe, args.overrides, args.timm_train)
    order = list(runs) + list(reversed(runs))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(args.timm_train.resolve().parent)}
    images, figures = images_read(work_of(recipe)), {name: [] for name in runs}
    info = machine()
    print("machine: {platform}, {cpus} CPUs ({cpu}), torch {torch}, load average {load_average}".format(**info))
    with tempfile.TemporaryDirectory() as scratch:
        for index, name in enumerate(order):
            command, reader = runs[name]
            wall, lines, cpu = run_timed(command(Path(scratch) / str(index)), env)
            figures[name].append(summary(wall, reader(lines), cpu, images))
            row = figures[name][-1]
            print(f"run {index + 1}: {name:<18} wall {wall:6.1f} s, {row['images_per_sec']:5.1f} images/s")
    means = {name: statistics.mean(r["wall"] for r in rows) for name, rows in figures.items()}
    for name, mean in means.items():
        print(f"{name:<18} mean wall {mean:6.1f} s over {len(figures[name])} runs")
    for ours, peer in (("hfcls, fp32 NCHW", "timm, fp32 NCHW"), ("hfcls, fp32 NHWC", "timm, fp32 NHWC")):
        print(f"ratio {ours} / {peer}: {means[peer] / means[ours]:.3f}x wall")
    print(f"ratio hfcls, fp32 NHWC / timm, fp32 NCHW: {means['timm, fp32 NCHW'] / means['hfcls, fp32 NHWC']:.3f}x wall")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "runs": figures}, indent=1))


if __name__ == "__main__":
    main()
