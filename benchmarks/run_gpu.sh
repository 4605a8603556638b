#!/usr/bin/env bash
# Issue 17's GPU figures, in one run of a few minutes on one GPU, from the repository root:
# ResNet-50 at 224, bf16 + channels_last, batch 256, on real JPEGs (benchmarks/make_data.py), each
# data backend (data.decode=workers: CPU workers; data.decode=cuda: nvJPEG + augmentation on the GPU)
# against --synthetic, training and evaluation; first the CUDA checks of tests/data/test_on_device.py
# (nvJPEG's batches and metrics against the CPU decoder's), last the same on a copy shrunk to 256 px.
#
#   bash benchmarks/gpu_wheels.sh            # here (PyPI): the packages the GPU machine lacks, into .whl/
#   bash benchmarks/run_gpu.sh               # there (carry .whl); results in $OUT or benchmarks/results/gpu
#   SMOKE=1 bash benchmarks/run_gpu.sh       # the same steps, tiny, on any machine (checks this script)
#
# Each stage writes its JSON as it ends, so a run cut short keeps what it measured; STAGES chooses
# stages (default: "checks train eval shrunk"). The issue's target: real images/s >= 90 % of synthetic.
set -euo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
if [ -d .whl ] && ! $PY -c "import datasets, evaluate" 2>/dev/null; then  # the wheels of gpu_wheels.sh
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
RESULTS=${OUT:-benchmarks/results/gpu}
STAGES=${STAGES:-checks train eval shrunk}
mkdir -p "$RESULTS"
exec > >(tee "$RESULTS/run_gpu.log") 2>&1

if [ "${SMOKE:-0}" = 1 ]; then  # tiny and quick; on a machine without CUDA, data.decode=cpu stands in for cuda
  DATA=data/bench/gpu_smoke; PER_CLASS=12; BATCH=4; WORKERS=1; TIMING="--steps 2 --warmup 1 --rounds 1"
  DEVICE_DECODE=$($PY -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
else
  # 8,000 training images = 31 batches of 256: a turn's 6 + 24 steps never cross an epoch's end,
  # whose restart would stall the workers (ImageNet's epochs are 5,005 such batches long).
  DATA=data/bench/gpu_jpeg; PER_CLASS=800; BATCH=256; WORKERS=14; TIMING="--steps 24 --warmup 6 --rounds 1"
  DEVICE_DECODE=cuda
fi
RECIPE=recipes/imagenet/resnet50_8xb32_in1k.yaml
SETTINGS=(data.batch_size=$BATCH data.num_workers=$WORKERS train.mixed_precision=bf16 train.channels_last=true)
# Evaluation reads the training folder: as many batches as training, so no epoch ends in a turn either.
VAL=(data.val=null data.val.type=imagefolder data.val.path=$DATA/train)
JPEGS=(data.train=null data.train.type=imagefolder data.train.path=$DATA/train "${VAL[@]}")
SHRUNK=("data.train={type: disk, path: ${DATA}_256/train}" "${VAL[@]}")

$PY - <<'PREFLIGHT'
import importlib.metadata
import os
import sys

try:
    import torch, torchvision, transformers, accelerate, datasets, evaluate
except ImportError as error:
    pyarrow = importlib.metadata.version("pyarrow")
    sys.exit(f"{error}: bring the missing packages as wheels (bash benchmarks/gpu_wheels.sh here, carry .whl); "
             f"this machine's pyarrow is {pyarrow}, datasets 5.2 needs >= 24")
print("torch", torch.__version__, "torchvision", torchvision.__version__, "transformers", transformers.__version__,
      "accelerate", accelerate.__version__, "datasets", datasets.__version__, "evaluate", evaluate.__version__)
print("CPU cores", len(os.sched_getaffinity(0)), "| GPU", torch.cuda.get_device_name() if torch.cuda.is_available()
      else "none")
PREFLIGHT
test -d "$DATA/train" || $PY benchmarks/make_data.py jpeg-folder "$DATA" --classes 10 --per-class $PER_CLASS \
  --val-per-class 2

bench() {  # bench NAME OVERRIDE...: one hfcls-bench run against --synthetic, its JSON in $RESULTS/NAME.json
  local name=$1; shift
  echo "== $name"
  $PY -m hfcls.cli.bench $RECIPE "${SETTINGS[@]}" "$@" --synthetic $TIMING --json "$RESULTS/$name.json"
}

failed=0
for stage in $STAGES; do
  case $stage in
    checks)  # nvJPEG against the CPU decoder: batches within a level, the same evaluation (prints both)
      $PY -m pytest -q -s -p no:cacheprovider tests/data/test_on_device.py || { failed=1; echo "== checks FAILED"; } ;;
    train|eval)
      for decode in workers $DEVICE_DECODE; do
        bench "${stage}_$decode" "${JPEGS[@]}" data.decode=$decode --what $stage
      done ;;
    shrunk)  # the same JPEGs with the shorter side at most 256 (hfcls-prepare shrink), training
      test -d "${DATA}_256/train" || $PY -m hfcls.cli.prepare shrink $RECIPE "${DATA}_256" "${JPEGS[@]}" \
        --splits train --short-side 256
      for decode in workers $DEVICE_DECODE; do
        bench "shrunk_train_$decode" "${SHRUNK[@]}" data.decode=$decode --what train
      done ;;
    *) echo "unknown stage $stage (checks, train, eval, shrunk)"; exit 2 ;;
  esac
done

$PY - "$RESULTS" <<'EOF'
"""The figures the issue asks for, from the runs' JSON: each backend against synthetic."""
import json
import sys
from pathlib import Path

print(f"\n{'run':<22} {'variant':<46} {'images/s':>9} {'of synthetic':>13} {'data wait':>10} {'GPU idle':>9} "
      f"{'workers':>8} {'CPU cores':>10}")
for path in sorted(Path(sys.argv[1]).glob("*.json")):
    measured = json.loads(path.read_text())
    for r in measured["results"]:
        fraction = r.get("fraction_of_synthetic")
        verdict = "" if fraction is None or r["pipeline"] == "synthetic" else (" >= 90 %" if fraction >= 0.9 else
                                                                                " below 90 %")
        idle = "-" if r.get("gpu_idle_fraction") is None else f"{r['gpu_idle_fraction']:.0%}"
        print(f"{path.stem:<22} {r['variant']:<46} {r['images_per_sec']:>9.0f} "
              f"{'-' if fraction is None else f'{fraction:.0%}':>13} {r['data_wait_fraction']:>10.0%} {idle:>9} "
              f"{r['num_workers']:>8} {measured['machine']['cpus']:>10}{verdict}")
EOF
exit $failed
