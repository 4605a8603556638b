#!/usr/bin/env bash
# The runs behind benchmarks/README.md, from the repository root. Each line is
# one hfcls-bench invocation: the baseline and the fast paths interleaved in one run.
# Run it on a quiet machine: other jobs on the same cores distort the ratios.
set -euo pipefail
BENCH="python -m hfcls.cli.bench"   # = hfcls-bench once installed
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
test -d data/digits || python -m hfcls.cli.prepare digits data/digits
test -d data/bench/jpeg || python benchmarks/make_data.py jpeg-folder data/bench/jpeg
test -d data/bench/cifar || python benchmarks/make_data.py cifar-pickle data/bench/cifar
DIGITS="recipes/digits/resnet-tiny_1xb64_digits.yaml data.train.path=data/digits/train data.val.path=data/digits/val"
JPEG=benchmarks/recipes/resnet18_jpeg.yaml
CIFAR="recipes/cifar10/resnet18_8xb16_cifar10.yaml data.train.root=data/bench/cifar data.val.root=data/bench/cifar"
uptime
# Digits, end-to-end training: the recipe (in memory, channels_last), then the worker loader.
$BENCH $DIGITS --what train --baseline --synthetic --steps 90 --warmup 5 --rounds 3 --json "$OUT/digits_train.json"
$BENCH $DIGITS data.in_memory=false --what train --baseline --steps 90 --warmup 5 --rounds 3 \
  --json "$OUT/digits_train_loader.json"
# ImageNet-like JPEG folder at 224, 2 workers each: the train input pipeline alone, then evaluation.
for run in 1 2 3 4; do  # the closest ratio to its target: four runs show its spread
  $BENCH $JPEG --what data --baseline --steps 120 --warmup 5 --rounds 3 --json "$OUT/jpeg_data_run$run.json"
done
$BENCH $JPEG --what eval --baseline --steps 12 --warmup 2 --rounds 3 --json "$OUT/jpeg_eval.json"
# CIFAR-10 layout, 50,000 images: the data path in memory, training, and the worker
# loader's memory over one whole epoch (every image once).
$BENCH $CIFAR data.batch_size=128 --what data --baseline --steps 60 --warmup 3 --rounds 3 --json "$OUT/cifar_data.json"
$BENCH $CIFAR --what train --baseline --steps 30 --warmup 3 --rounds 3 --json "$OUT/cifar_train.json"
$BENCH $CIFAR data.in_memory=false data.batch_size=256 --what data --steps 196 --warmup 2 --rounds 1 \
  --json "$OUT/cifar_memory.json"
uptime
