#!/usr/bin/env bash
# The small-image recipe runs behind benchmarks/README.md ("Small-image recipes"), from the
# repository root: every recipe (and its references) on every real small data set that can be had
# offline, 3 seeds each, one whole `hfcls-train` command timed per line of $OUT/small_recipes.tsv.
# PIN="taskset -c 1" (with OMP_NUM_THREADS=1) pins the runs to one core; unset, they use all cores.
# ONLY=REGEX runs just the matching names (results/small_recipes_2threads.tsv: ONLY='^small-convnet_(digits|mnist-5k)$').
# Needs data/digits and data/mnist_5k (see the README section for the two commands).
set -euo pipefail
TRAIN="python -m hfcls.cli.train"   # = hfcls-train once installed
OUT=${OUT:-benchmarks/results}
SEEDS=${SEEDS:-"0 1 2"}
WORK=${WORK:-work_dirs/small_recipes}
PIN=${PIN:-}
mkdir -p "$OUT" "$WORK"
TSV="$OUT/small_recipes.tsv"
printf "name\tseed\twall_s\tval_top1\tload_before\n" > "$TSV"
MNIST5K="data.train.root=data/mnist_5k data.val.root=data/mnist_5k data.test.root=data/mnist_5k"
# LeNet-5 given the small recipes' schedule and augmentation: the reference of its size.
LENET_FAST="optim.lr=0.2 optim.nesterov=true optim.weight_decay=0.0005 schedule.type=linear schedule.warmup_epochs=1
  train.epochs=15 train.label_smoothing=0.1 train.ema.decay=0.99 evaluation.interval=15"
LENET_CROP='data.train_pipeline=[{type: Resize, size: 32}, {type: RandomCrop, size: 32, padding: 2}]'
# The digits recipe's ResNet (80 k parameters, a stride-4 stem) in the small MNIST recipe instead of small_convnet.
RESNET_TINY='model.config={model_type: resnet, embedding_size: 16, hidden_sizes: [16, 32, 64], depths: [1, 1, 1], layer_type: basic}'

run() {  # run NAME RECIPE [overrides...]: one timed training per seed, its last val top-1
  local name=$1; shift
  [[ $name =~ ${ONLY:-.} ]] || return 0  # ONLY=REGEX: just the runs whose name matches
  for seed in $SEEDS; do
    local work="$WORK/$name-seed$seed" load start end top1
    rm -rf "$work"
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s.%N)
    $PIN $TRAIN "$@" --seed "$seed" --work-dir "$work" > "$work.log" 2>&1
    end=$(date +%s.%N)
    top1=$(grep -o '"val_accuracy_top1": [0-9.]*' "$work/metrics.jsonl" | tail -1 | cut -d' ' -f2)
    printf "%s\t%s\t%.1f\t%s\t%s\n" "$name" "$seed" "$(echo "$end - $start" | bc)" "$top1" "$load" | tee -a "$TSV"
  done
}

uptime
run small-convnet_digits recipes/small/small-convnet_1xb64_digits.yaml
run resnet-tiny_digits recipes/digits/resnet-tiny_1xb64_digits.yaml
run small-convnet_mnist-5k recipes/small/small-convnet_1xb128_mnist-5k.yaml
run lenet5-fast_mnist-5k recipes/mnist/lenet5_1xb128_mnist.yaml $MNIST5K $LENET_FAST "$LENET_CROP"
run lenet5-zoo_mnist-5k recipes/mnist/lenet5_1xb128_mnist.yaml $MNIST5K
run resnet-tiny-fast_mnist-5k recipes/small/small-convnet_1xb128_mnist-5k.yaml "$RESNET_TINY"
# The same two nets at about equal time: small_convnet for fewer epochs, the ResNet for more.
run small-convnet-8ep_mnist-5k recipes/small/small-convnet_1xb128_mnist-5k.yaml train.epochs=8 evaluation.interval=8
run resnet-tiny-fast-30ep_mnist-5k recipes/small/small-convnet_1xb128_mnist-5k.yaml "$RESNET_TINY" \
  train.epochs=30 evaluation.interval=30
# What bf16 + channels_last buy in the whole command: the MNIST recipe in fp32, NCHW.
SEEDS=0 run small-convnet-fp32_mnist-5k recipes/small/small-convnet_1xb128_mnist-5k.yaml \
  train.mixed_precision=no train.channels_last=false
# CIFAR-10 cannot be had offline: the time of one epoch of the CIFAR recipe on 50,000 generated
# 32x32 photo crops (their labels are random, so the top-1 means nothing), one seed.
test -d data/bench/cifar || python benchmarks/make_data.py cifar-pickle data/bench/cifar
SEEDS=0 run small-convnet_cifar10-generated-1-epoch recipes/small/small-convnet_1xb128_cifar10.yaml \
  data.train.root=data/bench/cifar data.val.root=data/bench/cifar data.test.root=data/bench/cifar \
  train.epochs=1 evaluation.interval=1 checkpoint.interval=1
uptime
