#!/usr/bin/env bash
# Train on a Cloud TPU VM pod slice: the same command on every worker (docs/multihost.md).
#
#   bash launch/tpu_pod.sh            # edit the settings below first
#
# JAX detects the slice (process i of n, coordinator = worker 0), so no flags are needed.
# WORKDIR must be one directory that every worker sees (an NFS/Filestore mount); orbax
# writes one checkpoint copy there and every worker reads it back on resume.
set -euo pipefail

TPU_NAME="${TPU_NAME:-my-tpu}"            # gcloud compute tpus tpu-vm create ... --accelerator-type=v4-32
ZONE="${ZONE:-us-central2-b}"
PROJECT="${PROJECT:-my-project}"
REPO_DIR="${REPO_DIR:-~/p2p_jax}"         # Where the code lives on every worker.
WORKDIR="${WORKDIR:-/mnt/shared/p2p_facades}"     # Shared by all workers.
DATA_DIR="${DATA_DIR:-/mnt/shared/tensorflow_datasets}"  # Shared: worker 0 prepares once.
CONFIG="${CONFIG:-configs/facades.py}"
EXTRA="${EXTRA:-}"                        # e.g. --config.batch_size=32 (a multiple of all chips)

gc() { gcloud compute tpus tpu-vm "$@" --zone="$ZONE" --project="$PROJECT"; }

# 1. Code and dependencies on every worker (skip once done).
if [ "${SETUP:-1}" = 1 ]; then
  gc scp --recurse --worker=all "$(dirname "$0")/.." "$TPU_NAME:$REPO_DIR"
  gc ssh "$TPU_NAME" --worker=all --command="cd $REPO_DIR && pip install -q -e '.[tpu]'"
fi

# 2. The same training command on every worker, at the same time. The log's first lines
#    say 'process i of n: ... local / N global devices' on each worker.
gc ssh "$TPU_NAME" --worker=all --command="cd $REPO_DIR && \
  python -m p2p_jax.main --config=$CONFIG --workdir=$WORKDIR \
    --config.data.data_dir=$DATA_DIR $EXTRA 2>&1 | tee -a /tmp/p2p_jax_train.log"
