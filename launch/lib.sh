# Shared by the launch scripts (sourced, not run). They stay thin: Accelerate
# (torchrun underneath) starts and joins the processes; hfcls.cli.dist only answers
# "which port" and "is it free".

HFCLS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Run this checkout's hfcls even when another copy is installed, as MMClassification's
# scripts do (once: slurm_node.sh sources this again under srun).
if [[ "${PYTHONPATH:-}" != "$HFCLS_ROOT" && "${PYTHONPATH:-}" != "$HFCLS_ROOT:"* ]]; then
    export PYTHONPATH="$HFCLS_ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi

# hfcls_whole NAME VALUE MIN: stop with one line (exit 2) unless VALUE is a whole number >= MIN.
hfcls_whole() {
    if [[ ! "$2" =~ ^(0|[1-9][0-9]{0,8})$ ]] || (( $2 < $3 )); then
        echo "error: $1=$2 is not a whole number of at least $3 (e.g. $1=$3)" >&2
        exit 2
    fi
}

# hfcls_machines GPUS: check GPUS, NNODES and NODE_RANK (defaults 1 and 0), one line and exit 2 if wrong.
hfcls_machines() {
    NNODES=${NNODES:-1}
    NODE_RANK=${NODE_RANK:-0}
    hfcls_whole GPUS "$1" 1
    hfcls_whole NNODES "$NNODES" 1
    hfcls_whole NODE_RANK "$NODE_RANK" 0
    if (( NODE_RANK >= NNODES )); then
        echo "error: NODE_RANK=$NODE_RANK is not below NNODES=$NNODES; the machines are numbered 0 to NNODES-1" >&2
        exit 2
    fi
}

# hfcls_port RECIPE: $PORT, else the recipe's dist.port, else 29500.
hfcls_port() {
    python -m hfcls.cli.dist port "$1"
}

# hfcls_launch PROCESSES MACHINES MACHINE_RANK MAIN_IP PORT MODULE [ARGS...]
# PROCESSES counts every process of the job, over all machines (Accelerate's
# --num_processes). Replaces the shell with `accelerate launch`.
hfcls_launch() {
    local processes=$1 machines=$2 rank=$3 main_ip=$4 port=$5
    shift 5
    if (( processes == 1 )); then
        exec accelerate launch --num_processes 1 --num_machines 1 -m "$@"
    fi
    if (( rank == 0 )); then
        python -m hfcls.cli.dist check-port "$port" || exit
    fi
    # --multi_gpu also covers machines without GPUs: hfcls then joins the processes over gloo.
    exec accelerate launch --multi_gpu --num_processes "$processes" --num_machines "$machines" \
        --machine_rank "$rank" --main_process_ip "$main_ip" --main_process_port "$port" -m "$@"
}

# hfcls_srun PARTITION JOB_NAME RECIPE MODULE [ARGS...]
# One srun task per node; each runs slurm_node.sh, which launches that node's processes.
hfcls_srun() {
    local partition=$1 job_name=$2 recipe=$3
    shift 3
    export GPUS=${GPUS:-8}
    hfcls_whole GPUS "$GPUS" 1
    export GPUS_PER_NODE=${GPUS_PER_NODE:-$(( GPUS < 8 ? GPUS : 8 ))}
    hfcls_whole GPUS_PER_NODE "$GPUS_PER_NODE" 1
    local cpus_per_task=${CPUS_PER_TASK:-5}
    hfcls_whole CPUS_PER_TASK "$cpus_per_task" 1
    if (( GPUS % GPUS_PER_NODE != 0 )); then
        echo "error: GPUS=$GPUS is not a multiple of GPUS_PER_NODE=$GPUS_PER_NODE; every node runs GPUS_PER_NODE processes" >&2
        exit 2
    fi
    local nodes=$(( GPUS / GPUS_PER_NODE ))
    PORT=$(hfcls_port "$recipe") || exit
    export PORT
    # shellcheck disable=SC2086  # SRUN_ARGS holds several options
    srun --partition="$partition" --job-name="$job_name" --nodes="$nodes" --ntasks="$nodes" --ntasks-per-node=1 \
        --gres=gpu:"$GPUS_PER_NODE" --cpus-per-task=$(( cpus_per_task * GPUS_PER_NODE )) --kill-on-bad-exit=1 \
        ${SRUN_ARGS:-} "$HFCLS_ROOT/launch/slurm_node.sh" "$@"
}
