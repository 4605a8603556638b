#!/usr/bin/env bash
# The runs behind benchmarks/README.md, from the repository root. Each line is
# one hfcls-bench invocation: the baseline and the fast paths interleaved in one run.
set -euo pipefail
BENCH="python -m hfcls.bench"   # = hfcls-bench once installed
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
test -d data/digits || python -m hfcls.data.prepare digits data/digits
test -d data/bench/jpeg || python benchmarks/make_data.py jpeg-folder data/bench/jpeg
DIGITS="recipes/digits/resnet-tiny_1xb64_digits.yaml data.train.path=data/digits/train data.val.path=data/digits/val"
JPEG=benchmarks/recipes/resnet18_jpeg.yaml
uptime
# Digits, end-to-end training: in-memory, then the worker loader; + bf16/channels_last.
$BENCH $DIGITS data.in_memory=true train.mixed_precision=bf16 train.channels_last=true \
  --what train --baseline --synthetic --steps 45 --warmup 5 --rounds 3 --json "$OUT/digits_train_in_memory.json"
$BENCH $DIGITS data.in_memory=false --what train --baseline --steps 45 --warmup 5 --rounds 3 --json "$OUT/digits_train_loader.json"
# ImageNet-like JPEG folder at 224, 2 workers each: the train input pipeline alone, then evaluation.
$BENCH $JPEG --what data --baseline --steps 45 --warmup 5 --rounds 3 --json "$OUT/jpeg_data.json"
$BENCH $JPEG --what eval --baseline --steps 12 --warmup 2 --rounds 3 --json "$OUT/jpeg_eval.json"
uptime
