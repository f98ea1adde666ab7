"""CycleGAN: losses, image pool, the train step (order, devices) and parity with PyTorch."""

import functools
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, assert_adam_params_close, tiny_cyclegan_config
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from p2p_jax import cyclegan, image_pool, losses, schedules

SHAPE = (32, 32, 3)


def batch(n=2, seed=0):
  rng = np.random.default_rng(seed)
  a = rng.uniform(-1, 1, (n, *SHAPE)).astype(np.float32)
  b = np.tanh(0.8 * rng.uniform(-1, 1, (n, *SHAPE)) + 0.2).astype(np.float32)
  return {'A': a, 'B': b}


# --- Losses ---------------------------------------------------------------------------------

def test_cyclegan_g_loss_by_hand():
  real_a = jnp.array([[0.0, 1.0]])
  rec_a = jnp.array([[0.5, 0.0]])  # |diff| mean 0.75
  real_b = jnp.array([[1.0, -1.0]])
  rec_b = jnp.array([[1.0, 0.0]])  # 0.5
  idt_a = jnp.array([[0.0, -1.0]])  # vs real_b: 0.5
  idt_b = jnp.array([[0.0, 0.0]])  # vs real_a: 0.5
  d_a = jnp.array([0.0, 2.0])  # (D - 1)^2 mean = 1
  d_b = jnp.array([0.5])  # 0.25
  total, t = losses.cyclegan_g_loss(d_a_fake_b=d_a, d_b_fake_a=d_b, real_a=real_a, rec_a=rec_a,
                                    real_b=real_b, rec_b=rec_b, idt_a=idt_a, idt_b=idt_b,
                                    lambda_a=10.0, lambda_b=4.0, lambda_identity=0.5)
  want = {'g_a': 1.0, 'g_b': 0.25, 'cycle_a': 7.5, 'cycle_b': 2.0,
          'idt_a': 4.0 * 0.5 * 0.5, 'idt_b': 10.0 * 0.5 * 0.5}
  for k, v in want.items():
    np.testing.assert_allclose(float(t[k]), v, rtol=1e-6, err_msg=k)
  np.testing.assert_allclose(float(total), sum(want.values()), rtol=1e-6)
  # Each D loss is halved: 0.5 * (MSE(real, 1) + MSE(fake, 0)).
  np.testing.assert_allclose(float(losses.d_loss(jnp.array([0.0, 1.0]), jnp.array([2.0]),
                                                 'lsgan')), 0.5 * (0.5 + 4.0))


def test_lambda_identity_zero_removes_identity_terms(tiny):
  cfg = tiny_cyclegan_config()
  nets, state, _ = tiny
  nets0 = cyclegan.make_networks(tiny_cyclegan_config(**{'loss.lambda_identity': 0.0}), 3, 3)
  b = batch()
  loss_fn = jax.jit(cyclegan.generator_loss, static_argnums=4)
  total, (t, *_) = loss_fn(state.g_params, state.d_params, b['A'], b['B'], nets)
  total0, (t0, *_) = loss_fn(state.g_params, state.d_params, b['A'], b['B'], nets0)
  assert float(t['idt_a']) > 0 and float(t['idt_b']) > 0
  assert float(t0['idt_a']) == 0 and float(t0['idt_b']) == 0
  np.testing.assert_allclose(float(total0), float(total - t['idt_a'] - t['idt_b']), rtol=1e-6)
  # Identity needs as many channels in A as in B.
  with pytest.raises(cyclegan.ConfigError, match='lambda_identity=0'):
    cyclegan.make_networks(cfg, 1, 3)
  cyclegan.make_networks(tiny_cyclegan_config(**{'loss.lambda_identity': 0.0}), 1, 3)


# --- Image pool -----------------------------------------------------------------------------

def _run_pool(key_seed, n=250, size=50, per_query=5):
  pool = image_pool.init(size, (1, 1, 1))
  query = jax.jit(image_pool.query)
  outs = []
  key = jax.random.key(key_seed)
  for i in range(0, n, per_query):
    imgs = jnp.arange(i, i + per_query, dtype=jnp.float32).reshape(per_query, 1, 1, 1)
    pool, out = query(pool, imgs, jax.random.fold_in(key, i))
    outs.append(np.asarray(out).ravel())
  return pool, np.concatenate(outs)


def test_pool_fills_then_returns_about_half_historical():
  pool, out = _run_pool(0)
  ids = np.arange(len(out))
  np.testing.assert_array_equal(out[:50], ids[:50])  # Filling: the new image comes back.
  historical = out[50:] != ids[50:]
  assert 0.35 < historical.mean() < 0.65, historical.mean()
  assert (out[50:][historical] < ids[50:][historical]).all()  # Only images seen before.
  assert int(pool.count) == 50
  # The pool holds each image at most once, and the returned history was stored.
  stored = np.asarray(pool.images).ravel()
  assert len(set(stored.tolist())) == 50
  _, again = _run_pool(0)
  np.testing.assert_array_equal(out, again)  # Same key, same draws.
  _, other = _run_pool(1)
  assert (other != out).any()


def test_pool_size_zero_passes_through():
  pool = image_pool.init(0, (2, 2, 1))
  x = jnp.ones((3, 2, 2, 1))
  pool2, y = image_pool.query(pool, x, jax.random.key(0))
  np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
  assert pool2.images.shape == (0, 2, 2, 1)


# --- The step -------------------------------------------------------------------------------

def _single(nets):
  return jax.jit(functools.partial(cyclegan.train_step, nets=nets))


@pytest.fixture(scope='module')
def tiny():
  """(nets, initial state, jitted single-device step) of the tiny config, compiled once."""
  nets = cyclegan.make_networks(tiny_cyclegan_config(), 3, 3)
  return nets, cyclegan.create_train_state(nets, 0, SHAPE, SHAPE), _single(nets)


def test_one_step_finite_and_updates_everything(tiny):
  nets, state, step = tiny
  assert state.pools['fake_a'].images.shape == (1, 50, *SHAPE)
  # Four different initial networks (the generators do not share a key).
  assert not np.allclose(state.g_params['g_a']['c7s1_in']['kernel'],
                         state.g_params['g_b']['c7s1_in']['kernel'])
  new, m = step(state, batch())
  assert set(m) == set(cyclegan.METRICS)
  assert all(np.isfinite(float(v)) for v in m.values())
  np.testing.assert_allclose(float(m['d_loss']), float(m['d_a'] + m['d_b']), rtol=1e-6)
  assert int(new.step) == 1 and int(new.pools['fake_b'].count[0]) == 2
  for before, after in ((state.g_params, new.g_params), (state.d_params, new.d_params)):
    for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
      assert not np.array_equal(np.asarray(x), np.asarray(y))


def test_cycle_losses_fall_on_a_fixed_batch(tiny):
  _, state, step = tiny
  hist = []
  b = batch()
  for _ in range(8):
    state, m = step(state, b)
    hist.append({k: float(v) for k, v in m.items()})
  cyc = [h['cycle_a'] + h['cycle_b'] for h in hist]
  assert cyc[-1] < 0.97 * cyc[0], cyc
  assert sum(y < x for x, y in zip(cyc, cyc[1:])) >= 6, cyc  # Falls at (almost) every step.


def test_discriminators_train_on_the_pre_update_fakes(tiny):
  nets, state, step = tiny
  b = batch()
  new, _ = step(state, b)

  d_grad = jax.jit(jax.grad(lambda d, fa, fb: cyclegan.discriminator_loss(
      d, b['A'], b['B'], fa, fb, nets)[0]))
  fakes = lambda g: jax.jit(cyclegan.generator_loss, static_argnums=4)(  # noqa: E731
      g, state.d_params, b['A'], b['B'], nets)[1][1:]
  # The pool is filling, so D sees exactly this step's fakes. After one Adam step the
  # first moment is (1 - b1) * gradient.
  mu = new.d_opt_state[0].mu
  want = jax.tree.map(lambda g: 0.5 * g, d_grad(state.d_params, *fakes(state.g_params)))
  wrong = jax.tree.map(lambda g: 0.5 * g, d_grad(state.d_params, *fakes(new.g_params)))
  for got, w, bad in zip(jax.tree.leaves(mu), jax.tree.leaves(want), jax.tree.leaves(wrong)):
    np.testing.assert_allclose(np.asarray(got), np.asarray(w), rtol=1e-4, atol=1e-9)
  assert any(not np.allclose(np.asarray(w), np.asarray(x), rtol=1e-3, atol=0)
             for w, x in zip(jax.tree.leaves(want), jax.tree.leaves(wrong)))


def _sharded_step(nets, devices):
  mesh = Mesh(np.array(devices), (cyclegan.AXIS,))
  specs = lambda state: state.replace(  # noqa: E731
      **{f: jax.tree.map(lambda _: P(cyclegan.AXIS), getattr(state, f))
         for f in cyclegan.PER_DEVICE_FIELDS})
  state_spec = specs(jax.tree.map(lambda _: P(), cyclegan.create_train_state(
      nets, 0, SHAPE, SHAPE)))
  step = functools.partial(cyclegan.train_step, nets=nets, axis_name=cyclegan.AXIS)
  return jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(state_spec, P(cyclegan.AXIS)),
                               out_specs=(state_spec, P()), check_vma=False))


def test_two_devices_equal_one_device(tiny):
  assert len(jax.local_devices()) >= 2, 'conftest sets 2 fake CPU devices'
  nets = tiny[0]
  b = batch(2)
  results = []
  for n in (1, 2):
    state = cyclegan.create_train_state(nets, 0, SHAPE, SHAPE, num_devices=n)
    state, m = _sharded_step(nets, jax.local_devices()[:n])(state, b)
    results.append((jax.device_get(state), {k: float(v) for k, v in m.items()}))
  (s1, m1), (s2, m2) = results
  for k in m1:
    np.testing.assert_allclose(m1[k], m2[k], rtol=2e-5, atol=1e-6, err_msg=k)
  # After one Adam step the first moment is (1 - b1) * the gradient: the device-mean of
  # the gradients must equal the single-device gradient (a sum would be 2x). (Biases
  # followed by instance norm have pure rounding-noise gradients, ~1e-8: atol 1e-6.)
  for one, two in ((s1.g_opt_state, s2.g_opt_state), (s1.d_opt_state, s2.d_opt_state)):
    for x, y in zip(jax.tree.leaves(one[0].mu), jax.tree.leaves(two[0].mu)):
      y = np.asarray(y)
      np.testing.assert_allclose(np.asarray(x), y, rtol=1e-4,
                                 atol=1e-6 + 2e-5 * float(np.abs(y).max()))
  # Each device keeps its own pool: one device stored both images, two devices one each.
  assert s1.pools['fake_a'].count.tolist() == [2] and s2.pools['fake_a'].count.tolist() == [1, 1]
  np.testing.assert_allclose(np.asarray(s1.pools['fake_b'].images[0, :2]),
                             np.asarray(s2.pools['fake_b'].images[:, 0]), atol=1e-5)


def test_paper_config_learning_rate_every_epoch_of_its_200_epochs():
  sys.path.insert(0, os.path.join(ROOT, 'configs'))
  import cyclegan_paper
  cfg = cyclegan_paper.get_config()
  spe = 3
  assert schedules.total_steps(cfg.num_train_steps, spe) == 600
  lr = schedules.learning_rate_fn(cfg.optim, spe)
  for epoch in range(200):
    # Reference: LambdaLR(lambda e: 1 - max(0, e + epoch_count - n_epochs) / (n_epochs_decay
    # + 1)) with epoch_count 1, n_epochs = n_epochs_decay = 100: epoch i (0-based) at lambda(i).
    want = 2e-4 * (1.0 - max(0, epoch + 1 - 100) / 101.0)
    for s in range(epoch * spe, (epoch + 1) * spe):
      np.testing.assert_allclose(float(lr(s)), want, rtol=1e-6, err_msg=str(epoch))


# --- Parity with the PyTorch reference step ---------------------------------------------

def test_one_step_equals_the_pytorch_reference(tiny):
  torch = pytest.importorskip('torch', reason='PyTorch not installed: reference parity skipped')
  from p2p_jax import torch_reference as tr
  nets, state, step = tiny
  torch.manual_seed(0)
  t_nets = {'g_a': tr.ResnetGenerator(3, 3, 4, 1), 'g_b': tr.ResnetGenerator(3, 3, 4, 1),
            'd_a': tr.NLayerDiscriminator(3, 4, 3, norm='instance'),
            'd_b': tr.NLayerDiscriminator(3, 4, 3, norm='instance')}
  copy = lambda k, paths: tr.flax_params_from_torch(  # noqa: E731
      t_nets[k], (state.g_params if k[0] == 'g' else state.d_params)[k], paths)
  g = {k: copy(k, tr.resnet_flax_paths(1)) for k in ('g_a', 'g_b')}
  d = {k: copy(k, tr.patchgan_flax_paths(3)) for k in ('d_a', 'd_b')}
  state = state.replace(g_params=g, g_opt_state=nets.g_tx.init(g), d_params=d,
                        d_opt_state=nets.d_tx.init(d))
  t_step = tr.make_torch_cyclegan_step(t_nets['g_a'], t_nets['g_b'], t_nets['d_a'],
                                       t_nets['d_b'])
  for i in range(2):
    b = batch(1, seed=i)
    t_losses = t_step(tr.nhwc_to_torch(b['A']), tr.nhwc_to_torch(b['B']))
    state, m = step(state, b)
    for name, key in (('D_A', 'd_a'), ('G_A', 'g_a'), ('cycle_A', 'cycle_a'),
                      ('idt_A', 'idt_a'), ('D_B', 'd_b'), ('G_B', 'g_b'),
                      ('cycle_B', 'cycle_b'), ('idt_B', 'idt_b'), ('G', 'g_loss')):
      np.testing.assert_allclose(float(m[key]), t_losses[name], rtol=1e-4, atol=1e-6,
                                 err_msg=f'step {i} {name}')
  for k in ('g_a', 'g_b', 'd_a', 'd_b'):
    want = tr.flax_params_from_torch(
        t_nets[k], (state.g_params if k[0] == 'g' else state.d_params)[k],
        tr.resnet_flax_paths(1) if k[0] == 'g' else tr.patchgan_flax_paths(3))
    got = (state.g_params if k[0] == 'g' else state.d_params)[k]
    # A conv bias followed by instance norm cancels out: its gradient is rounding noise,
    # which Adam turns into steps of up to ~lr either way. Every weight stays within that
    # bound; all but those few biases agree tightly.
    assert_adam_params_close(got, want, max_loose_fraction=0.02)
