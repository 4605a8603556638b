#!/usr/bin/env bash
# The peer tables of benchmarks/README.md (issues 18 and 28), from the repository root: whole training
# commands of hfcls, the Hugging Face Trainer and timm's train.py, each as it comes and with its own best
# switches, interleaved. Run it on a quiet machine (load average below ~1.5 before it starts): every
# other job on the 2 cores slows the 2-thread training steps more than its share.
#   TIMM_TRAIN=../timm/train.py bash benchmarks/run_peers.sh        # about 45 minutes on 2 cores
#   STAGES="r18 digits" bash benchmarks/run_peers.sh                  # some of them
set -euo pipefail
BENCH="python -m hfcls.cli.bench"   # = hfcls-bench once installed
OUT=${OUT:-benchmarks/results}
TIMM_TRAIN=${TIMM_TRAIN:-../timm/train.py}
STAGES=${STAGES:-"digits r18 decode steps compile r50"}
mkdir -p "$OUT"
test -d data/digits || python -m hfcls.cli.prepare digits data/digits
test -d data/bench/jpeg || python benchmarks/make_data.py jpeg-folder data/bench/jpeg
PEERS="--peers trainer,timm --timm-train $TIMM_TRAIN"
for stage in $STAGES; do
  uptime
  case $stage in
    digits)  # 32 px digits, 6 epochs (issue 18's table, now with the peers' best switches)
      $BENCH benchmarks/recipes/resnet18_digits_peers.yaml $PEERS --rounds 2 --json "$OUT/peers_digits_quiet.json" ;;
    r18)  # ResNet-18 at 224 on the JPEG folder, 2 epochs (issue 28's table)
      $BENCH benchmarks/recipes/resnet18_jpeg_peers.yaml $PEERS --rounds 1 --json "$OUT/peers_jpeg_resnet18.json" ;;
    r50)  # ResNet-50, the same work
      $BENCH benchmarks/recipes/resnet50_jpeg_peers.yaml $PEERS --rounds 1 --json "$OUT/peers_jpeg_resnet50.json" ;;
    decode)  # a worker's CPU time per image, scaled JPEG decoding off and on, per RandomResizedCrop side
      python benchmarks/decode_cost.py benchmarks/recipes/resnet18_jpeg.yaml --worker --images 320 \
        --sides 224,192,160,128,64 | tee "$OUT/decode_worker.txt" ;;
    steps)  # bare training steps at 224: transformers' ResNet against timm's, fp32 and bf16 + channels_last
      python benchmarks/step_speed.py --models resnet18,resnet50 --rounds 3 | tee "$OUT/step_speed.txt" ;;
    compile)  # torch.compile (inductor) on the training step at 224, ResNet-18
      python benchmarks/step_speed.py --models resnet18 --impls transformers --compile --steps 6 --rounds 2 \
        | tee "$OUT/step_compile.txt" ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
uptime
