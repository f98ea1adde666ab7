"""p2p_jax.convolution: the one place that decides how the networks' convolutions run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from p2p_jax import convolution
from p2p_jax.cpu import xla_options
from p2p_jax.errors import ConfigError
from p2p_jax.models import NLayerDiscriminator, UNetGenerator
from p2p_jax.parallel import DataParallel
from p2p_jax.pix2pix import create_train_state

EIGEN = xla_options.eigen_convolutions()


def test_step_plan_rules():
  plan = lambda platform, par='shard_map', **env: convolution.step_plan(  # noqa: E731
      platform, par, env={convolution.OVERRIDE_ENV: v for v in env.values()})
  for accel in ('gpu', 'tpu', 'cuda', 'rocm'):
    assert plan(accel) == convolution.StepPlan('xla', None)
    assert plan(accel, override='fast') == convolution.StepPlan('xla', None)
  if EIGEN:  # The CI's jaxlib (test_cpu_xla_options checks that it is in the range).
    assert plan('cpu') == convolution.StepPlan('fast_eigen', EIGEN)
  else:
    assert plan('cpu') == convolution.StepPlan('fast', None)
  assert plan('cpu', 'pmap') == convolution.StepPlan('fast', None)  # pmap: no options.
  assert plan('cpu', override='fast') == convolution.StepPlan('fast', None)
  assert plan('cpu', override='xla') == convolution.StepPlan('xla', None)
  assert plan('cpu', override=' ') == plan('cpu')  # Empty means unset.
  with pytest.raises(ConfigError, match='P2P_JAX_CPU_CONV'):
    plan('cpu', override='eigen')


def _record(monkeypatch):
  """Spies on the op functions of every form; returns the list of names traced."""
  seen = []

  def spy(f):
    def traced(x, k):
      seen.append(f.__name__)
      return f(x, k)
    return traced

  for forms, fns in list(convolution._FORMS.items()):
    monkeypatch.setitem(convolution._FORMS, forms, tuple(spy(f) for f in fns))
  return seen


@pytest.mark.parametrize('forms', ['xla', 'fast', 'fast_eigen'])
def test_every_network_conv_traces_in_the_plan_forms(forms, monkeypatch):
  seen = _record(monkeypatch)
  g = UNetGenerator(output_channels=3, num_downs=5, ngf=8)
  d = NLayerDiscriminator(ndf=8, n_layers=3)
  plan = convolution.StepPlan(forms)

  @plan.wrap
  def shapes():
    jax.eval_shape(lambda: g.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
    jax.eval_shape(lambda: d.init(jax.random.key(0), jnp.zeros((1, 64, 64, 6)), train=False))

  shapes()
  want_ct = 'conv_transpose_4x4_s2_' + ('xla' if forms == 'xla' else 'fast')
  assert seen.count(want_ct) == 5  # Every decoder level.
  assert seen.count(f'conv_4x4_s2_{forms}') == 5 + 3  # The encoder and the PatchGAN.
  assert seen.count(f'conv_4x4_s1_{forms}') == 2  # The PatchGAN's last two.
  assert len(seen) == 15
  seen.clear()
  jax.eval_shape(lambda: d.init(jax.random.key(0), jnp.zeros((1, 64, 64, 6)), train=False))
  default = convolution.step_plan().forms  # Outside a step: the backend's default plan.
  assert seen.count(f'conv_4x4_s2_{default}') == 3


def test_unknown_forms_are_refused():
  with pytest.raises(ValueError, match='nope'):
    with convolution.use_forms('nope'):
      pass


@pytest.mark.parametrize('batch', [1, 3])
def test_cpu_forms_equal_xla_through_whole_networks(batch):
  """Outputs and every gradient of the U-Net and the PatchGAN, CPU forms vs plain XLA."""
  x = jax.random.normal(jax.random.key(1), (batch, 32, 32, 3))
  g = UNetGenerator(output_channels=2, num_downs=5, ngf=8)
  v = g.init(jax.random.key(0), x, train=False)

  def loss(params):
    y, _ = g.apply({'params': params, 'batch_stats': v['batch_stats']}, x, train=True,
                   dropout=False, mutable=['batch_stats'])
    return jnp.sum(jnp.sin(3 * y)), y

  d = NLayerDiscriminator(ndf=8)
  xd = jax.random.normal(jax.random.key(2), (batch, 32, 32, 6))
  dv = d.init(jax.random.key(0), xd, train=False)
  d_loss = lambda p: jnp.sum(d.apply(  # noqa: E731
      {'params': p, 'batch_stats': dv['batch_stats']}, xd, train=True,
      mutable=['batch_stats'])[0] ** 2)

  def run(forms):
    with convolution.use_forms(forms):
      (_, y), gg = jax.value_and_grad(loss, has_aux=True)(v['params'])
      return y, gg, jax.grad(d_loss)(dv['params'])

  y_ref, g_ref, d_ref = run('xla')
  for forms in ('fast', 'fast_eigen'):
    y, gg, dg = run(forms)
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-5)
    for a, b in zip(jax.tree.leaves((g_ref, d_ref)), jax.tree.leaves((gg, dg))):
      np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize('override', ['', 'fast', 'xla'])
def test_the_step_gets_the_plan_of_its_devices(override, monkeypatch):
  """DataParallel (what training and the bench run) compiles with the plan's options and
  traces in its forms; the override reaches it."""
  monkeypatch.setenv(convolution.OVERRIDE_ENV, override)
  config = tiny_config(steps_per_dispatch=2)
  devices = jax.local_devices()[:1]
  dp = DataParallel.from_config(config, 3, devices=devices)
  plan = convolution.step_plan(devices[0].platform, 'shard_map')
  assert dp.conv_plan == plan
  if devices[0].platform == 'cpu':
    assert plan.forms == {'': 'fast_eigen' if EIGEN else 'fast', 'fast': 'fast',
                          'xla': 'xla'}[override]
  seen = _record(monkeypatch)
  state = dp.put_state(create_train_state(dp.nets, 0, (32, 32, 3), 3))
  seen.clear()
  batch = {k: np.zeros((2, 2, 32, 32, 3), np.float32) for k in ('input', 'target')}
  dp.lower(state, dp.put_batch(batch))
  assert seen and all(name.endswith(f'_{plan.forms}') or
                      (plan.forms == 'fast_eigen' and name == 'conv_transpose_4x4_s2_fast')
                      for name in seen), (plan.forms, sorted(set(seen)))
