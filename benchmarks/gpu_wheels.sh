#!/usr/bin/env bash
# The Python packages hfcls needs that the GPU machine's image lacks (datasets and evaluate, and
# the two of their requirements it lacks), as wheels in .whl/ for benchmarks/run_gpu.sh to install
# there: the versions hfcls is tested with here. Run from the repository root, where PyPI is reachable;
# name more packages to add them, e.g. `bash benchmarks/gpu_wheels.sh pyarrow==26.0.1` if run_gpu.sh's
# first lines say the machine's pyarrow is older than datasets' 24 (that wheel is 45 MB of the 64 MiB).
set -euo pipefail
mkdir -p .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl datasets==5.2.0 evaluate==0.4.6 dill==0.4.1 multiprocess==0.70.19 "$@"
ls -l .whl
