"""Where a whole training command's main-thread time goes, from a py-spy recording of it.

    py-spy record --idle --rate 20 --format raw -o hfcls.txt -- hfcls-train RECIPE ...
    py-spy record --idle --rate 20 --format raw -o timm.txt -- python timm/train.py ...
    python benchmarks/profile_split.py hfcls.txt timm.txt [--rate 20]

Each sample of the main thread is put in one bucket by the frames on its stack: the training step's
forward, backward and optimizer, evaluation, waiting for a batch, the rest of the loop, and start-up
(everything before the first epoch: imports, recipe, data, model). hfcls's and timm's train.py name
their loop functions differently; both are known here.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

# (bucket, frames any of which puts a sample in it), first match wins
BUCKETS = (
    ("evaluation", ("evaluate (hfcls/engine/loop", "validate (")),
    ("step: backward", ("backward",)),
    ("step: optimizer", ("torch/optim/",)),
    ("step: forward", ("forward (", "_call_impl")),
    ("waiting for a batch", ("_next_data", "__next__")),
)
LOOPS = ("train_epochs (hfcls/engine/loop", "train_one_epoch (")
MAIN_THREAD = ("_run_module_as_main", "<module> (")


def bucket(stack: str) -> str:
    evaluation, *step = BUCKETS  # timm's train.py evaluates outside its epoch function
    if any(frame in stack for frame in evaluation[1]):
        return evaluation[0]
    if not any(loop in stack for loop in LOOPS):
        return "start-up and the rest"
    return next((name for name, frames in step if any(f in stack for f in frames)), "loop, other")


def split(recording: Path, rate: float) -> collections.Counter:
    seconds = collections.Counter()
    for line in recording.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        if stack.startswith(MAIN_THREAD):
            seconds[bucket(stack)] += int(count) / rate
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recordings", nargs="+", type=Path)
    parser.add_argument("--rate", type=float, default=20, help="py-spy's --rate")
    args = parser.parse_args()
    splits = {path.stem: split(path, args.rate) for path in args.recordings}
    names = [name for name, _ in BUCKETS] + ["loop, other", "start-up and the rest"]
    print(f"{'main thread, s':24}" + "".join(f"{stem:>12}" for stem in splits))
    for name in names + ["total"]:
        row = [sum(s.values()) if name == "total" else s[name] for s in splits.values()]
        print(f"{name:24}" + "".join(f"{value:12.1f}" for value in row))


if __name__ == "__main__":
    main()
