#!/usr/bin/env bash
# Fine-tune on several processes with torchrun: the same finetune call, DistributedDataParallel
# underneath (gloo on CPU, nccl on CUDA). Checkpoints and printing come from rank 0 only.
#
#   bash examples/distributed.sh TRAIN_LABELS TRAIN_DIR VAL_LABELS VAL_DIR [NPROC [OPTIONS...]]
#
# On one machine with 4 GPUs: NPROC=4. On CPU, each process uses OMP_NUM_THREADS threads.
# OPTIONS go to finetune_challenge.py after the defaults below, so they override them, e.g.
# `... 2 --epochs 10 --resume`. torchrun comes with torch: activate its environment first.
set -euo pipefail
if [ $# -lt 4 ]; then
    echo "usage: bash $0 TRAIN_LABELS TRAIN_DIR VAL_LABELS VAL_DIR [NPROC [OPTIONS...]]" >&2
    exit 2
fi
nproc=${5:-2}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec torchrun --standalone --nproc_per_node="$nproc" "$(dirname "$0")/finetune_challenge.py" \
    --train-labels "$1" --train-dir "$2" --val-labels "$3" --val-dir "$4" \
    --model efficientnet-lite0 --epochs 5 --out runs/distributed "${@:6}"
