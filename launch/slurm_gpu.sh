#!/usr/bin/env bash
# Train on several GPU nodes under SLURM: one process per node, each using all its GPUs.
#
#   sbatch launch/slurm_gpu.sh        # edit the #SBATCH lines and the settings below first
#
# srun starts the same command on every node; JAX reads SLURM's variables (process i of n,
# coordinator = the first node), so no flags are needed. WORKDIR and DATA_DIR must be on a
# filesystem every node mounts (NFS, Lustre, ...).
#SBATCH --job-name=p2p_jax
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=16
#SBATCH --time=12:00:00
#SBATCH --output=p2p_jax_%j.log
# Preemption: SLURM sends SIGTERM (to every task) before killing; the run saves one
# checkpoint at a step agreed by all processes and stops. Resubmit to resume.
#SBATCH --signal=TERM@120
set -euo pipefail

REPO_DIR="${REPO_DIR:-$HOME/p2p_jax}"      # pip install -e "$REPO_DIR[cuda]" in this env
WORKDIR="${WORKDIR:-/shared/$USER/p2p_facades}"
DATA_DIR="${DATA_DIR:-/shared/$USER/tensorflow_datasets}"
CONFIG="${CONFIG:-configs/facades.py}"
EXTRA="${EXTRA:-}"                         # e.g. --config.batch_size=64 (multiple of all GPUs)

cd "$REPO_DIR"
srun --kill-on-bad-exit=1 python -m p2p_jax.main --config="$CONFIG" --workdir="$WORKDIR" \
  --config.data.data_dir="$DATA_DIR" $EXTRA
