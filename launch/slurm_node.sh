#!/usr/bin/env bash
# One node's share of a Slurm job, run by srun from slurm_train.sh / slurm_test.sh
# (one task per node): `accelerate launch` for GPUS_PER_NODE processes, joined to
# the other nodes through the first host of the job's node list.
#
#   slurm_node.sh MODULE [ARGS...]     with GPUS and PORT exported by hfcls_srun
set -euo pipefail
source "$(dirname "$0")/lib.sh"
if [[ "$SLURM_NODEID" != "$SLURM_PROCID" ]]; then
    echo "error: task $SLURM_PROCID runs on node $SLURM_NODEID; hfcls needs one srun task per node" >&2
    exit 2
fi
MAIN_HOST=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
hfcls_launch "$GPUS" "$SLURM_NNODES" "$SLURM_NODEID" "$MAIN_HOST" "$PORT" "$@"
