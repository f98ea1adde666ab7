"""Test setup: 2 fake CPU devices (for data-parallel tests) and tiny configs."""

import os
import sys

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
_flag = '--xla_force_host_platform_device_count=2'
if _flag not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' ' + _flag).strip()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# Tests build many structurally identical train steps; a persistent compilation cache
# (shared by the xdist workers) compiles each distinct one once.
import tempfile  # noqa: E402
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR',
                      os.path.join(tempfile.gettempdir(), 'p2p_jax_test_xla_cache'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES', '0')
# Never write prepared test datasets into the user's ~/tensorflow_datasets, and give each
# xdist worker its own directory (workers inherit the controller's environment; two
# workers preparing the same dataset in one directory collide).
if os.environ.get('P2P_TEST_OWNS_TFDS_DIR') or 'TFDS_DATA_DIR' not in os.environ:
  os.environ['P2P_TEST_OWNS_TFDS_DIR'] = '1'
  worker = os.environ.get('PYTEST_XDIST_WORKER', 'main')
  os.environ['TFDS_DATA_DIR'] = tempfile.mkdtemp(prefix=f'p2p_tfds_{worker}_')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'configs'))

import pytest  # noqa: E402


def _tiny_run(c):
  """What every tiny test config shares: 32 px crops of 36 px images, 8 + 4 embedded
  pairs, a log line every step, no checkpoints or sample grids before the end."""
  c.image_size = 32
  c.checkpoint_every_steps = 1000
  c.log_every_steps = 1
  c.sample_every_steps = 1000
  c.num_sample_images = 2
  c.data.load_size = 36
  c.data.embedded_resolution = 36
  c.data.embedded_num_train = 8
  c.data.embedded_num_test = 4
  c.data.shuffle_buffer = 8


def tiny_config(**overrides):
  """The default config shrunk to 32 px and a few channels: compiles in seconds."""
  import default
  c = default.get_config()
  _tiny_run(c)
  c.batch_size = 2
  c.num_train_steps = 2
  c.steps_per_dispatch = 1  # Tests that want more say so.
  c.model.num_downs = 5
  c.model.ngf = 8
  c.model.ndf = 8
  return _override(c, overrides)


@pytest.fixture
def config():
  return tiny_config()


def assert_adam_params_close(a, b, lr=2e-4, tight=5e-5, max_loose_fraction=1e-3):
  """Weights after a few Adam steps from runs that differ only by float rounding.

  Adam's update is ~lr * g / |g| for small steps, so a gradient within rounding of zero can
  move a weight by up to 2 * lr in one run and not the other. Every weight must agree within
  that bound per step taken, and all but a tiny fraction within ``tight``.
  """
  import jax
  import numpy as np
  loose = total = 0
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    d = np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))
    assert d.max() <= 2 * lr * 3 + 1e-7, d.max()
    loose += int((d > tight).sum())
    total += d.size
  assert loose <= max_loose_fraction * total, (loose, total)


def tiny_cyclegan_config(**overrides):
  """configs/cyclegan_default.py shrunk to 32 px, a 1-block ResNet and 4 filters."""
  import cyclegan_default
  c = cyclegan_default.get_config()
  _tiny_run(c)
  c.batch_size = 1
  c.model.generator = 'resnet_1blocks'
  c.model.ngf = 4
  c.model.ndf = 4
  c.loss.lambda_identity = 0.5  # The reference's default (the embedded demo turns it off).
  c.optim.lr_constant_epochs = 100
  c.optim.lr_decay_epochs = 100
  return _override(c, overrides)


def _override(c, overrides: dict):
  """Sets ``{'section.field': value}`` overrides on config ``c``; returns ``c``."""
  for k, v in overrides.items():
    target = c
    *path, leaf = k.split('.')
    for p in path:
      target = target[p]
    target[leaf] = v
  return c
