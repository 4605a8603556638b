#!/usr/bin/env bash
# Evaluate a checkpoint on GPUS processes of this machine, or of each of NNODES machines.
#
#   launch/dist_test.sh RECIPE CHECKPOINT GPUS [eval args: --metrics ... --out FILE]
#
# Environment: PORT, NNODES, NODE_RANK, MASTER_ADDR, as for dist_train.sh.
set -euo pipefail
if (( $# < 3 )); then
    echo "usage: launch/dist_test.sh RECIPE CHECKPOINT GPUS [eval args...]" >&2
    exit 2
fi
source "$(dirname "$0")/lib.sh"
RECIPE=$1
CHECKPOINT=$2
GPUS=$3
shift 3
hfcls_machines "$GPUS"
PORT=$(hfcls_port "$RECIPE")
hfcls_launch $(( GPUS * NNODES )) "$NNODES" "$NODE_RANK" "${MASTER_ADDR:-127.0.0.1}" "$PORT" \
    hfcls.cli.eval "$RECIPE" "$CHECKPOINT" "$@"
