"""Start-up decisions of p2p_jax.distributed and the multi-process config checks (no jobs)."""

import pytest

from p2p_jax import distributed
from p2p_jax.errors import ConfigError
from p2p_jax.parallel import check_batch, check_mode


@pytest.mark.parametrize('env,expected', [
    ({}, None),
    ({'SLURM_JOB_ID': '7', 'SLURM_NTASKS': '4'}, None),  # The batch script: one task.
    ({'SLURM_JOB_ID': '7', 'SLURM_STEP_NUM_TASKS': '1'}, None),
    ({'SLURM_JOB_ID': '7', 'SLURM_STEP_NUM_TASKS': '2'}, 'SLURM'),
    ({'OMPI_COMM_WORLD_SIZE': '1'}, None),
    ({'OMPI_COMM_WORLD_SIZE': '4'}, 'Open MPI'),
    ({'TPU_WORKER_HOSTNAMES': 'a,b'}, 'Cloud TPU'),
])
def test_detected_launcher(env, expected):
  assert distributed.detected_launcher(env) == expected


def test_single_process_run_is_left_alone():
  assert distributed.initialize(environ={}) is None


@pytest.mark.parametrize('kwargs,env,match', [
    ({'coordinator_address': 'h:1234'}, {}, 'needs all of --coordinator_address'),
    ({}, {'JAX_NUM_PROCESSES': '2'}, 'needs all of'),
    ({'coordinator_address': 'h:1', 'num_processes': 2, 'process_id': 2}, {},
     r'--process_id must be in \[0, 2\)'),
    ({}, {'JAX_COORDINATOR_ADDRESS': 'h:1', 'JAX_NUM_PROCESSES': 'two',
          'JAX_PROCESS_ID': '0'}, '--num_processes must be an integer'),
])
def test_incomplete_or_bad_explicit_settings_are_user_errors(kwargs, env, match):
  with pytest.raises(ConfigError, match=match):
    distributed.initialize(environ=env, **kwargs)


def test_batch_error_names_global_devices_processes_and_nearest_sizes():
  with pytest.raises(ConfigError) as e:
    check_batch(6, 8, 2)
  msg = str(e.value)
  assert 'batch_size 6' in msg and '(8 = 2 processes x 4)' in msg
  assert '--config.batch_size=8' in msg
  with pytest.raises(ConfigError, match=r'try --config.batch_size=8 or --config.batch_size=16'):
    check_batch(12, 8, 2)
  assert check_batch(16, 8, 2) == 2


def test_pmap_across_processes_fails_at_start_up():
  check_mode('pmap', 1)
  check_mode('shard_map', 4)
  with pytest.raises(ConfigError, match='parallelism=pmap runs in one process only.*shard_map'):
    check_mode('pmap', 2)
