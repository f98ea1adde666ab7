"""Multi-process start-up: ``initialize()`` joins a multi-host job before any computation.

A job has several processes (one per host, or per GPU) when a launcher says so:
  - explicitly: ``coordinator_address``, ``num_processes``, ``process_id`` (main's flags
    ``--coordinator_address``, ``--num_processes``, ``--process_id``), or the environment
    variables ``JAX_COORDINATOR_ADDRESS`` (read by JAX itself), ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID``;
  - detected: a SLURM job step with several tasks (``srun``), an Open MPI job with several
    ranks (``mpirun``) or a Cloud TPU VM (a pod slice's workers). JAX's own cluster
    detection then fills in the coordinator, the process count and this process's id.
Anything else is a single-process run, and ``initialize`` does nothing.

On CPU, collectives between processes use gloo (set before ``jax.distributed.initialize``;
it has no effect on GPU or TPU). ``jax.distributed.initialize`` also starts JAX's
preemption service, which ``preemption_point`` uses.
"""

from __future__ import annotations

import glob
import os
from typing import Callable, TypeVar

from p2p_jax.errors import ConfigError

T = TypeVar('T')

ENV_NUM_PROCESSES = 'JAX_NUM_PROCESSES'
ENV_PROCESS_ID = 'JAX_PROCESS_ID'
ENV_COORDINATOR = 'JAX_COORDINATOR_ADDRESS'


def detected_launcher(environ=None) -> str | None:
  """Name of the multi-process launcher this process runs under, or None."""
  env = os.environ if environ is None else environ
  # srun sets SLURM_STEP_NUM_TASKS (the batch script itself is one task, not the job).
  if 'SLURM_JOB_ID' in env and int(env.get('SLURM_STEP_NUM_TASKS', '1')) > 1:
    return 'SLURM'
  if int(env.get('OMPI_COMM_WORLD_SIZE', '1')) > 1:
    return 'Open MPI'
  # A Cloud TPU VM: TPU chips as /dev/accel* (v2-v4) or /dev/vfio/<n> (v5+), and libtpu.
  # On a single-host slice JAX's detection finds one process, which is harmless.
  if env.get('TPU_WORKER_HOSTNAMES') or env.get('TPU_PROCESS_ADDRESSES') or (
      (glob.glob('/dev/accel[0-9]*') or glob.glob('/dev/vfio/[0-9]*')) and _has_libtpu()):
    return 'Cloud TPU'
  return None


def _has_libtpu() -> bool:
  import importlib.util
  return importlib.util.find_spec('libtpu') is not None


def _int_or_none(value, name: str) -> int | None:
  if value in (None, ''):
    return None
  try:
    return int(value)
  except ValueError:
    raise ConfigError(f'{name} must be an integer, got {value!r}.') from None


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, environ=None) -> str | None:
  """Calls ``jax.distributed.initialize`` when this is one process of several; returns how
  the job was recognised ('explicit', 'SLURM', 'Open MPI', 'Cloud TPU') or None for a
  single-process run (nothing is done). Must run before anything touches JAX's devices."""
  env = os.environ if environ is None else environ
  coordinator_address = coordinator_address or env.get(ENV_COORDINATOR) or None
  num_processes = _int_or_none(num_processes if num_processes is not None
                               else env.get(ENV_NUM_PROCESSES), '--num_processes')
  process_id = _int_or_none(process_id if process_id is not None
                            else env.get(ENV_PROCESS_ID), '--process_id')
  explicit = [v is not None for v in (coordinator_address, num_processes, process_id)]
  if any(explicit):
    how = 'explicit'
    if not all(explicit) and detected_launcher(env) is None:
      raise ConfigError(
          'A multi-process job needs all of --coordinator_address (host:port of process 0), '
          '--num_processes and --process_id (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, '
          'JAX_PROCESS_ID), unless SLURM, Open MPI or Cloud TPU provides them.')
    if num_processes is not None and process_id is not None and \
        not 0 <= process_id < num_processes:
      raise ConfigError(f'--process_id must be in [0, {num_processes}), got {process_id}.')
  else:
    how = detected_launcher(env)
    if how is None:
      return None
  import jax
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  return how


def describe(how: str | None = None) -> str:
  """One line naming this process, the process count and the devices: check it on every
  host to see that all joined (every host should report the same global device count)."""
  import jax
  local = jax.local_devices()
  kinds = sorted({d.device_kind for d in local})
  line = (f'process {jax.process_index()} of {jax.process_count()}: '
          f'{len(local)} local / {jax.device_count()} global devices '
          f'({jax.default_backend()}: {", ".join(kinds)})')
  if how:
    line += f'; multi-process job ({how})'
  return line


def is_main_process() -> bool:
  """True in the process that writes samples, summaries and metrics files (process 0)."""
  import jax
  return jax.process_index() == 0


BARRIER_TIMEOUT_S = 3600  # Preparing a large dataset in process 0 can take this long.


def barrier(name: str, timeout_s: int = BARRIER_TIMEOUT_S) -> None:
  """Waits until every process reaches the barrier ``name`` (no-op with one process).

  A barrier of JAX's coordination service (through orbax's ``get_barrier_sync_fn``), not a
  device collective: CPU collectives (gloo) give up when processes arrive more than ~30 s
  apart, e.g. while process 0 prepares the data or compiles more slowly."""
  import jax
  if jax.process_count() > 1:
    from orbax.checkpoint import multihost
    multihost.get_barrier_sync_fn()(key=f'p2p_jax: {name}', timeout_ms=timeout_s * 1000)


def main_process_first(name: str, fn: Callable[[], T]) -> T:
  """Runs ``fn`` in process 0 while the others wait at a barrier, then in the others
  (e.g. preparing a tfds dataset once into a shared ``data_dir``; the others then read it,
  or prepare their own copy where ``data_dir`` is not shared)."""
  import jax
  if jax.process_count() == 1:
    return fn()
  if is_main_process():
    try:
      out = fn()
    finally:  # Others would otherwise wait forever for a failed process 0.
      barrier(f'p2p_jax main_process_first: {name}')
    return out
  barrier(f'p2p_jax main_process_first: {name}')
  return fn()


def fingerprint(tree) -> str:
  """A short hash of a pytree's values (numpy arrays): equal on every host when the hosts
  hold the same replicated state."""
  import hashlib

  import jax
  import numpy as np
  h = hashlib.sha256()
  for x in jax.tree.leaves(tree):
    h.update(np.ascontiguousarray(x).tobytes())
  return h.hexdigest()[:16]


def preemption_point(counter: int) -> bool:
  """Multi-process: True in every process at the same ``counter`` once any host got a
  preemption notice (SIGTERM); call it with the same counter, counting up by one, in every
  process (JAX's ``reached_preemption_sync_point``). Single process: always False (there,
  SIGTERM interrupts directly)."""
  import jax
  if jax.process_count() == 1:
    return False
  from jax.experimental import multihost_utils
  return multihost_utils.reached_preemption_sync_point(counter)
