#!/usr/bin/env bash
# Train on GPUS processes of this machine, or of each of NNODES machines.
#
#   launch/dist_train.sh RECIPE GPUS [train args...]
#
# Environment, as MMClassification's dist_train.sh reads it:
#   PORT         rendezvous port (default: the recipe's dist.port, else 29500);
#                two jobs on one machine need two ports
#   NNODES       machines in the job (1); run the script on each of them
#   NODE_RANK    this machine's index, 0 on the machine at MASTER_ADDR (0)
#   MASTER_ADDR  address of machine 0 (127.0.0.1)
# Example: CUDA_VISIBLE_DEVICES=0,1,2,3 PORT=29501 launch/dist_train.sh recipes/... 4
set -euo pipefail
if (( $# < 2 )); then
    echo "usage: launch/dist_train.sh RECIPE GPUS [train args...]" >&2
    exit 2
fi
source "$(dirname "$0")/lib.sh"
RECIPE=$1
GPUS=$2
shift 2
hfcls_machines "$GPUS"
PORT=$(hfcls_port "$RECIPE")
hfcls_launch $(( GPUS * NNODES )) "$NNODES" "$NODE_RANK" "${MASTER_ADDR:-127.0.0.1}" "$PORT" \
    hfcls.train "$RECIPE" "$@"
