#!/usr/bin/env bash
# Every figure of issue 28 (and issue 18's digits peer table) in benchmarks/README.md, from the repository
# root: whole training commands of hfcls, the Hugging Face Trainer and timm's train.py, each as it comes and
# with its own best switches, interleaved; a worker's decode CPU per image; bare training steps per model
# implementation; torch.compile. Results go to $OUT (benchmarks/results) as JSON or text, and each stage
# prints its table. Run it on a quiet machine (load average below ~1.5 before it starts): every other job
# on the 2 cores slows the 2-thread training steps more than its share.
#
# Three parts, run one after the other or on separate occasions (times estimated for 2 quiet cores from
# the issue's own timings and the step costs in benchmarks/README.md):
#   STAGES="r18 decode digits" bash benchmarks/run_peers.sh    # part 1, ~16 min: issue 28's table, decode, digits
#   STAGES="r50" bash benchmarks/run_peers.sh                  # part 2, ~23 min: ResNet-50 at 224
#   STAGES="steps compile" bash benchmarks/run_peers.sh        # part 3, ~11 min: bare steps, timm vs transformers, compile
#   STAGES="steps32" bash benchmarks/run_peers.sh              # ~2 min: bare steps at 32 px, one-pixel convolutions
#   STAGES="fp32" bash benchmarks/run_peers.sh                 # part 4, ~19 min: the fp32 target, NCHW and NHWC
# Part 2 in two halves of ~15 min each, each against one peer: STAGES=r50-timm, then STAGES=r50-trainer.
# TIMM_TRAIN (default ../timm/train.py) is train.py of a pytorch-image-models checkout.
#
# TINY=1 runs every stage end to end on a tiny setting (a 2-class JPEG folder of 32 + 16 photos, batch 8,
# 2 digits epochs, one round, bare steps at 64 px) into $OUT (default work_dirs/peers_tiny), so that a
# broken stage shows in minutes, not halfway through the real run; its figures mean nothing.
set -euo pipefail
BENCH="python -m hfcls.cli.bench"   # = hfcls-bench once installed
TIMM_TRAIN=${TIMM_TRAIN:-../timm/train.py}
STAGES=${STAGES:-"r18 decode digits r50 steps steps32 compile"}
TINY=${TINY:-0}
if [ "$TINY" = 1 ]; then
  OUT=${OUT:-work_dirs/peers_tiny}
  JPEG=data/bench/jpeg_tiny
  test -d $JPEG || python benchmarks/make_data.py jpeg-folder $JPEG --classes 2 --per-class 16 --val-per-class 8
  JPEG_WORK="data.train.path=$JPEG/train data.val.path=$JPEG/val data.batch_size=8"
  DIGITS_WORK="train.epochs=2"
  ROUNDS_DIGITS=1
  DECODE="--images 32 --sides 224,128"
  STEPS="--size 64 --steps 1 --warmup 1 --rounds 1"
  STEPS32="--steps 1 --warmup 1 --rounds 1"
  COMPILE="--size 64 --steps 1 --warmup 1 --rounds 1"
else
  OUT=${OUT:-benchmarks/results}
  JPEG=data/bench/jpeg
  test -d $JPEG || python benchmarks/make_data.py jpeg-folder $JPEG
  JPEG_WORK=""
  DIGITS_WORK=""
  ROUNDS_DIGITS=2
  DECODE="--images 320 --sides 224,192,160,128,64"
  STEPS="--steps 6 --warmup 2 --rounds 3"
  STEPS32="--steps 20 --warmup 3 --rounds 5"
  COMPILE="--steps 6 --warmup 2 --rounds 2"
fi
mkdir -p "$OUT"
test -d data/digits || python -m hfcls.cli.prepare digits data/digits
PEERS="--peers trainer,timm --timm-train $TIMM_TRAIN"
for stage in $STAGES; do
  echo "== $stage: $(uptime)"
  case $stage in
    r18)  # ResNet-18 at 224 on the JPEG folder, 2 epochs (issue 28's table)
      $BENCH benchmarks/recipes/resnet18_jpeg_peers.yaml $JPEG_WORK $PEERS --rounds 1 \
        --json "$OUT/peers_jpeg_resnet18.json" --overwrite ;;
    r50)  # ResNet-50, the same work
      $BENCH benchmarks/recipes/resnet50_jpeg_peers.yaml $JPEG_WORK $PEERS --rounds 1 \
        --json "$OUT/peers_jpeg_resnet50.json" --overwrite ;;
    r50-timm|r50-trainer)  # r50 in two halves, each against one peer (the hfcls rows run in both)
      peer=${stage#r50-}
      only="--peers $peer"
      if [ "$peer" = timm ]; then only="$only --timm-train $TIMM_TRAIN"; fi
      $BENCH benchmarks/recipes/resnet50_jpeg_peers.yaml $JPEG_WORK $only --rounds 1 \
        --json "$OUT/peers_jpeg_resnet50_$peer.json" --overwrite ;;
    fp32)  # the fp32 target: hfcls and timm in fp32, NCHW and NHWC, in a mirrored order (~19 min)
      python benchmarks/fp32_runs.py benchmarks/recipes/resnet18_jpeg_peers.yaml $JPEG_WORK --timm-train $TIMM_TRAIN \
        --json "$OUT/fp32_runs_r18.json" | tee "$OUT/fp32_runs_r18.txt" ;;
    digits)  # 32 px digits, 6 epochs: issue 18's table (peers_digits_quiet.json), now with the peers' best switches
      $BENCH benchmarks/recipes/resnet18_digits_peers.yaml $DIGITS_WORK $PEERS --rounds $ROUNDS_DIGITS \
        --json "$OUT/peers_digits_switches.json" --overwrite ;;
    decode)  # a worker's CPU time per image, scaled JPEG decoding off and on, per RandomResizedCrop side
      python benchmarks/decode_cost.py benchmarks/recipes/resnet18_jpeg.yaml "data.train.path=$JPEG/train" \
        --worker $DECODE | tee "$OUT/decode_worker.txt"
      # and decoding alone at each DCT scale: the most any scaled decode can save on these files
      python benchmarks/decode_cost.py benchmarks/recipes/resnet18_jpeg.yaml "data.train.path=$JPEG/train" \
        --scales --images 320 | tee "$OUT/decode_scales.txt" ;;
    steps)  # bare training steps at 224: transformers' ResNet (as built, and with its ReLUs in place as hfcls
      # trains it) against timm's, fp32 and bf16 + channels_last
      python benchmarks/step_speed.py --models resnet18,resnet50 --impls transformers,transformers-inplace,timm \
        $STEPS | tee "$OUT/step_speed.txt" ;;
    steps32)  # bare training steps at 32 px, batch 64 (the digits work): with and without the one-pixel
      # convolutions as products (hfcls.engine.adapt.one_pixel_convs), against timm's
      python benchmarks/step_speed.py --models resnet18 --impls transformers-inplace,transformers-hfcls,timm \
        --size 32 --batch 64 $STEPS32 | tee "$OUT/step_speed_32px.txt" ;;
    compile)  # torch.compile (inductor) on the training step at 224, ResNet-18 and ResNet-50 in the zoo's bf16
      python benchmarks/step_speed.py --models resnet18,resnet50 --impls transformers-inplace --modes bf16 --compile \
        $COMPILE | tee "$OUT/step_compile.txt" ;;
    *) echo "unknown stage $stage (stages: r18 fp32 r50 r50-timm r50-trainer digits decode steps steps32 compile)" >&2; exit 2 ;;
  esac
done
echo "== done: $(uptime)"
