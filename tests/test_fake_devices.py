"""The README's fake-device commands (2 CPU devices, pmap and shard_map) finish cleanly.

Under pmap, reading the state back with ``x[0]`` per leaf used to dispatch one small
all-device program (with an all-reduce) per leaf while the step's collectives were still
running; on a 2-core machine that hung until XLA's 40 s rendezvous timeout aborted the
process (non-zero exit, "Aborted"). Each command runs twice here (the reported abort was
intermittent). The timeout only guards against an endless hang: a cold start on a busy
2-core machine took over 4 minutes.
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The README command, shrunk (tests/conftest.py's tiny_config) so that a run takes seconds.
TINY = ['--config.image_size=32', '--config.batch_size=2', '--config.num_train_steps=2',
        '--config.data.load_size=36', '--config.data.embedded_resolution=36',
        '--config.data.embedded_num_train=8', '--config.data.embedded_num_test=4',
        '--config.data.shuffle_buffer=8', '--config.model.num_downs=5',
        '--config.model.ngf=8', '--config.model.ndf=8', '--config.num_sample_images=2']


def run_fake_devices(workdir, parallelism, *extra, timeout=900):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=2')
  return subprocess.run(
      [sys.executable, '-m', 'p2p_jax.main', f'--workdir={workdir}',
       f'--config.parallelism={parallelism}', *TINY, *extra],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize('parallelism', ['pmap', 'shard_map'])
def test_readme_fake_device_command_finishes(tmp_path, parallelism):
  for attempt in range(2):
    r = run_fake_devices(tmp_path / f'w{attempt}', parallelism)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'Rendezvous' not in r.stderr and 'Aborted' not in r.stderr
    assert 'process 0 of 1: 2 local / 2 global devices' in r.stderr
    assert 'done: 2 steps' in r.stderr
