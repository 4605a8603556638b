#!/usr/bin/env bash
# The int8 table of benchmarks/README.md, from the repository root: the digits ResNet (the make demo recipe)
# and ResNet-50 at 224 (benchmarks/recipes/resnet50-224_digits.yaml, one epoch from random init), each exported
# to float32 and int8 ONNX (hfcls-export checks int8 against float32 on the whole validation split), evaluated
# (hfcls-eval), then timed on the CPU in one interleaved hfcls-bench run: PyTorch fp32, ONNX fp32, ONNX int8.
set -euo pipefail
PY=${PY:-python}
OUT=${OUT:-benchmarks/results}
WORK=${WORK:-work_dirs/int8}
DATA="data.train.path=data/digits/train data.val.path=data/digits/val"
mkdir -p "$OUT"
test -d data/digits || $PY -m hfcls.cli.prepare digits data/digits
declare -A RECIPE=([digits]=recipes/digits/resnet-tiny_1xb64_digits.yaml [resnet50]=benchmarks/recipes/resnet50-224_digits.yaml)
declare -A STEPS=([digits]=30 [resnet50]=6)
uptime
for name in digits resnet50; do
  recipe=${RECIPE[$name]}
  test -d "$WORK/$name/best" || $PY -m hfcls.train "$recipe" $DATA --work-dir "$WORK/$name"
  for graph in fp32 int8; do
    quantize=$([ "$graph" = int8 ] && echo "--quantize int8" || true)
    test -f "$WORK/$name/$graph.onnx" || $PY -m hfcls.cli.export "$WORK/$name/best" "$WORK/$name/$graph.onnx" \
      --dynamic-batch --limit 360 $quantize | tee "$OUT/int8_${name}_export_$graph.txt"
    $PY -m hfcls.cli.eval "$recipe" "$WORK/$name/$graph.onnx" --metrics accuracy --cfg-options $DATA | tee "$OUT/int8_${name}_eval_$graph.txt"
  done
  $PY -m hfcls.cli.bench "$recipe" $DATA data.in_memory=false --what eval --steps "${STEPS[$name]}" --warmup 1 --rounds 3 \
    --models "$WORK/$name/best,$WORK/$name/fp32.onnx,$WORK/$name/int8.onnx" --json "$OUT/int8_${name}_bench.json"
done
uptime
