#!/usr/bin/env bash
# Evaluate a checkpoint on a Slurm cluster: one srun task per node, each running
# `accelerate launch` for that node's GPUs.
#
#   launch/slurm_test.sh PARTITION JOB_NAME RECIPE CHECKPOINT [eval args...]
#
# Environment: GPUS, GPUS_PER_NODE, CPUS_PER_TASK, SRUN_ARGS, PORT, as for slurm_train.sh.
set -euo pipefail
if (( $# < 4 )); then
    echo "usage: launch/slurm_test.sh PARTITION JOB_NAME RECIPE CHECKPOINT [eval args...]" >&2
    exit 2
fi
source "$(dirname "$0")/lib.sh"
PARTITION=$1
JOB_NAME=$2
RECIPE=$3
CHECKPOINT=$4
shift 4
hfcls_srun "$PARTITION" "$JOB_NAME" "$RECIPE" hfcls.cli.eval "$RECIPE" "$CHECKPOINT" "$@"
