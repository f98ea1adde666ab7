"""The command line: summary counts and user errors without tracebacks."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, timeout=300):
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)  # One CPU device, as a user has (conftest fakes two).
  return subprocess.run([sys.executable, '-m', 'p2p_jax.main', *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def test_summary_of_facades_prints_reference_counts():
  r = cli('--config=configs/facades.py', '--mode=summary')
  assert r.returncode == 0, r.stderr[-2000:]
  assert 'Generator parameters: 54,413,955' in r.stdout
  assert 'Discriminator parameters: 2,768,705' in r.stdout


@pytest.mark.parametrize('args,message', [
    (['--config.batch_size=0'], 'must be a positive multiple of the number of devices'),
    (['--config.image_size=40'], 'does not fit the networks'),
    (['--config.data.dataset=facade'], "Unknown dataset 'facade'"),
    (['--config.num_epochs=1'], "--config.num_epochs: the config has no field 'num_epochs'"),
    (['--config.model.conv_impl=fast'], "the config has no field 'conv_impl'"),
])
def test_user_errors_exit_nonzero_without_traceback(tmp_path, args, message):
  r = cli(f'--workdir={tmp_path}', *args)
  assert r.returncode == 1
  assert message in r.stderr
  assert 'Traceback' not in r.stderr


def test_empty_manual_dir_names_the_directory(tmp_path):
  empty = tmp_path / 'empty'
  empty.mkdir()
  r = cli('--config=configs/facades.py', f'--workdir={tmp_path / "w"}',
          f'--config.data.manual_dir={empty}', f'--config.data.data_dir={tmp_path / "tfds"}')
  assert r.returncode == 1
  assert str(empty) in r.stderr
  assert 'Traceback' not in r.stderr
