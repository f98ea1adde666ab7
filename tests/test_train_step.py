"""The train step: learning, determinism, and data parallelism equivalences."""

import jax
import numpy as np
import pytest
from conftest import assert_adam_params_close, tiny_config

from p2p_jax import convolution
from p2p_jax.errors import ConfigError
from p2p_jax.parallel import DataParallel, check_batch
from p2p_jax.train_step import create_train_state, make_networks

SHAPE = (32, 32, 3)


def fixed_batch(n=4, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.uniform(-1, 1, (n, *SHAPE)).astype(np.float32)
  # A learnable target: a smooth function of the input.
  y = np.tanh(0.8 * x[..., ::-1] + 0.1).astype(np.float32)
  return {'input': x, 'target': y}


def run(config, mode='shard_map', devices=None, steps=3, seed=0, batch=None, k=1):
  nets = make_networks(config, 3, multi_device=True)
  state = create_train_state(nets, seed, SHAPE, 3)
  dp = DataParallel(nets, mode, devices or jax.local_devices(), steps_per_dispatch=k)
  s = dp.put_state(state)
  batch = batch or fixed_batch()
  history = []
  for _ in range(steps // k):
    b = jax.tree.map(lambda x: np.stack([x] * k), batch) if k > 1 else batch
    s, m = dp.step(s, dp.put_batch(b))
    history += dp.host_metrics(m)
  return jax.device_get(dp.get_state(s)), history


def assert_trees_close(a, b, rtol=2e-5, atol=2e-6, scale_rtol=0.0):
  """Leafwise allclose; ``scale_rtol`` adds ``scale_rtol * max|leaf|`` to ``atol``.

  Sums computed in a different order (per-device partial gradients, GEMM vs convolution
  kernel gradients) differ by rounding that scales with the leaf's magnitude, not with
  each element's: an element near zero can differ relatively much.
  """
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    y = np.asarray(y)
    tol = atol + scale_rtol * (float(np.abs(y).max()) if y.size else 0.0)
    np.testing.assert_allclose(np.asarray(x), y, rtol=rtol, atol=tol)


def test_l1_decreases_on_a_fixed_batch():
  c = tiny_config()
  c.optim.lr = 1e-3
  _, hist = run(c, steps=8, devices=jax.local_devices()[:1])
  assert len(hist) == 8
  l1 = [h['g_l1'] for h in hist]
  assert l1[-1] < 0.97 * l1[0], l1
  assert sum(b < a for a, b in zip(l1, l1[1:])) >= 6, l1  # Falls at (almost) every step.
  for h in hist:
    assert np.isfinite(list(h.values())).all()
    np.testing.assert_allclose(h['d_loss'], 0.5 * (h['d_real'] + h['d_fake']), rtol=1e-5)


def test_deterministic_by_seed():
  c = tiny_config()
  dev = jax.local_devices()[:1]
  s1, h1 = run(c, steps=2, devices=dev, seed=3)
  s2, h2 = run(c, steps=2, devices=dev, seed=3)
  s3, h3 = run(c, steps=2, devices=dev, seed=4)
  assert h1 == h2
  assert_trees_close(s1.g_params, s2.g_params, rtol=0, atol=0)
  assert h1 != h3


@pytest.fixture(scope='module')
def no_dropout_runs():
  """Dropout masks depend on the device layout; everything else must not."""
  c = tiny_config()
  c.model.dropout = 0.0
  one = run(c, 'shard_map', jax.local_devices()[:1], steps=1)
  return c, one


@pytest.mark.parametrize('mode', ['shard_map', 'pmap'])
def test_two_devices_equal_one_device(no_dropout_runs, mode):
  assert len(jax.local_devices()) >= 2, 'conftest sets 2 fake CPU devices'
  c, (s1, h1) = no_dropout_runs
  s2, h2 = run(c, mode, jax.local_devices()[:2], steps=1)
  for k in h1[0]:
    np.testing.assert_allclose(h1[0][k], h2[0][k], rtol=2e-5, atol=1e-6, err_msg=k)
  # After one step Adam's first moment is (1 - b1) * gradient: the gradients must agree
  # (a sum instead of a mean over devices would be off by 2x here).
  for one, two in ((s1.g_opt_state, s2.g_opt_state), (s1.d_opt_state, s2.d_opt_state)):
    assert_trees_close(one[0].mu, two[0].mu, rtol=1e-5, atol=2e-6, scale_rtol=2e-5)
  assert_trees_close(s1.g_batch_stats, s2.g_batch_stats)
  assert_trees_close(s1.d_batch_stats, s2.d_batch_stats)
  assert_adam_params_close(s1.g_params, s2.g_params)
  assert_adam_params_close(s1.d_params, s2.d_params)


def test_pmap_equals_shard_map_with_dropout():
  c = tiny_config()
  devs = jax.local_devices()[:2]
  sa, ha = run(c, 'shard_map', devs, steps=2)
  sb, hb = run(c, 'pmap', devs, steps=2)
  for a, b in zip(ha, hb):
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
  assert_adam_params_close(sa.g_params, sb.g_params)


def test_multi_step_dispatch_equals_single_steps():
  c = tiny_config()
  dev = jax.local_devices()[:1]
  s1, h1 = run(c, devices=dev, steps=2, k=1)
  s2, h2 = run(c, devices=dev, steps=2, k=2)
  for a, b in zip(h1, h2):
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
  assert_adam_params_close(s1.g_params, s2.g_params)


def test_batch_must_divide_devices():
  with pytest.raises(ConfigError, match='multiple of the number of devices'):
    check_batch(3, 2)
  c = tiny_config()
  nets = make_networks(c, 3, multi_device=True)
  dp = DataParallel(nets, 'shard_map', jax.local_devices()[:2])
  with pytest.raises(ConfigError, match='batch_size 3'):
    dp.put_batch(fixed_batch(3))


def test_unknown_parallelism():
  c = tiny_config()
  with pytest.raises(ConfigError, match='parallelism'):
    DataParallel(make_networks(c, 3), 'dp')


def test_bfloat16_training_tracks_float32():
  dev = jax.local_devices()[:1]
  c32 = tiny_config()
  c16 = tiny_config(dtype='bfloat16')
  s32, h32 = run(c32, devices=dev, steps=3)
  s16, h16 = run(c16, devices=dev, steps=3)
  # Master weights stay float32.
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(s16.g_params))
  for a, b in zip(h32, h16):
    for k in ('g_l1', 'd_loss', 'g_gan'):
      assert np.isfinite(b[k])
      np.testing.assert_allclose(b[k], a[k], rtol=0.05, err_msg=k)


@pytest.mark.parametrize('override', ['fast', 'xla'])
def test_convolution_plans_give_the_same_training(override, monkeypatch):
  """How the step computes its convolutions (on CPU by default the fast forms with Eigen
  convolutions; P2P_JAX_CPU_CONV=fast without Eigen, =xla plain XLA) changes the speed,
  not the result."""
  c = tiny_config()
  devices = jax.local_devices()[:1]
  ref_state, ref_hist = run(c, devices=devices)
  monkeypatch.setenv(convolution.OVERRIDE_ENV, override)
  state, hist = run(c, devices=devices)
  for h, r in zip(hist, ref_hist):
    for name in r:
      np.testing.assert_allclose(h[name], r[name], rtol=1e-4, atol=1e-6, err_msg=name)
  # Gradients equal up to rounding; Adam can turn rounding near zero into lr-sized steps.
  assert_adam_params_close(state.g_params, ref_state.g_params)
  assert_adam_params_close(state.d_params, ref_state.d_params)
