#!/usr/bin/env bash
# Train on a Slurm cluster: one srun task per node, each running `accelerate launch`
# for that node's GPUs.
#
#   launch/slurm_train.sh PARTITION JOB_NAME RECIPE WORK_DIR [train args...]
#
# Environment:
#   GPUS           processes in the job, over all nodes (8)
#   GPUS_PER_NODE  processes per node (GPUS, at most 8); nodes = GPUS / GPUS_PER_NODE
#   CPUS_PER_TASK  CPUs per process, as in MMClassification (5); each node's task
#                  asks for CPUS_PER_TASK x GPUS_PER_NODE
#   SRUN_ARGS      more srun options, e.g. "--quotatype=auto --time=2-00:00:00"
#   PORT           rendezvous port on the first node (default: the recipe's dist.port, else 29500)
set -euo pipefail
if (( $# < 4 )); then
    echo "usage: launch/slurm_train.sh PARTITION JOB_NAME RECIPE WORK_DIR [train args...]" >&2
    exit 2
fi
source "$(dirname "$0")/lib.sh"
PARTITION=$1
JOB_NAME=$2
RECIPE=$3
WORK_DIR=$4
shift 4
hfcls_srun "$PARTITION" "$JOB_NAME" "$RECIPE" hfcls.train "$RECIPE" --work-dir "$WORK_DIR" "$@"
