#!/usr/bin/env bash
# Train on all GPUs of one machine: one process sees every local GPU, no distributed set-up.
#
#   bash launch/single_host_gpus.sh   # or CUDA_VISIBLE_DEVICES=0,1 bash launch/...
#
# config.batch_size is the global batch: a multiple of the number of GPUs.
set -euo pipefail

WORKDIR="${WORKDIR:-/tmp/p2p_facades}"
CONFIG="${CONFIG:-configs/facades.py}"
EXTRA="${EXTRA:-}"                         # e.g. --config.batch_size=8

cd "$(dirname "$0")/.."
python -m p2p_jax.main --config="$CONFIG" --workdir="$WORKDIR" $EXTRA
