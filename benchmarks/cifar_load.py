"""Time loading a 50,000-image CIFAR-10-style pickle set: first load and cached second load.

    python benchmarks/cifar_load.py [--per-batch 10000] [--keep DIR]

Writes five 10,000-image train batches (random pixels: the worst case for PNG
compression) to a temporary folder, then loads `{type: cifar10, split: train}`
twice, each time in a fresh process with the same empty-at-start datasets cache,
as two training runs would. Times cover the load only, not Python's start-up.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

LOAD = """
import json, sys, time
from hfcls.data.sources import load_source
start = time.perf_counter()
ds = load_source({"type": "cifar10", "root": sys.argv[1], "split": "train"}, "benchmark")
print(json.dumps({"seconds": time.perf_counter() - start, "rows": len(ds)}))
"""


def timed_load(root: Path, cache: Path) -> dict:
    env = {
        **os.environ,
        "HF_DATASETS_CACHE": str(cache),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", LOAD, str(root)], env=env, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-batch", type=int, default=10_000, help="images per train batch (5 batches)")
    parser.add_argument("--keep", help="write the data and cache here instead of a temporary folder")
    args = parser.parse_args(argv)
    sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the tests' CIFAR writer
    from layouts import write_cifar10

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        start = time.perf_counter()
        write_cifar10(work / "cifar", per_batch=args.per_batch)
        print(f"wrote {5 * args.per_batch} train images in {time.perf_counter() - start:.1f} s")
        first = timed_load(work / "cifar", work / "cache")
        second = timed_load(work / "cifar", work / "cache")
        print(f"first load:  {first['seconds']:.2f} s ({first['rows']} images, {os.cpu_count()} cores)")
        print(f"cached load: {second['seconds']:.2f} s")


if __name__ == "__main__":
    main()
