"""Losses on known inputs."""

import jax.numpy as jnp
import numpy as np
import pytest

from p2p_jax import losses


def test_vanilla_losses_known_values():
  zero = jnp.zeros((2, 3, 3, 1))
  # sigmoid(0) = 0.5: BCE = log 2 for both terms; D loss halved.
  np.testing.assert_allclose(losses.d_loss(zero, zero), np.log(2.0), rtol=1e-6)
  np.testing.assert_allclose(losses.g_gan_loss(zero), np.log(2.0), rtol=1e-6)
  big = jnp.full((1, 2, 2, 1), 20.0)
  real, fake = losses.d_loss_terms(big, -big)
  assert float(real) < 1e-8 and float(fake) < 1e-8
  # Non-saturating G: D confidently rejecting the fake gives a large loss (~20).
  np.testing.assert_allclose(losses.g_gan_loss(-big), 20.0, rtol=1e-6)


def test_lsgan_and_hinge_known_values():
  r, f = jnp.full((4,), 0.5), jnp.full((4,), -0.5)
  np.testing.assert_allclose(losses.d_loss(r, f, 'lsgan'), 0.5 * (0.25 + 0.25))
  np.testing.assert_allclose(losses.g_gan_loss(f, 'lsgan'), 2.25)
  np.testing.assert_allclose(losses.d_loss(r, f, 'hinge'), 0.5 * (0.5 + 0.5))
  np.testing.assert_allclose(losses.g_gan_loss(f, 'hinge'), 0.5)


def test_unknown_mode():
  with pytest.raises(ValueError, match='gan_mode'):
    losses.d_loss(jnp.zeros(1), jnp.zeros(1), 'wgan')


def test_l1_and_d_input():
  a, b = jnp.zeros((1, 2, 2, 3)), jnp.ones((1, 2, 2, 3))
  assert float(losses.l1_loss(a, b)) == 1.0
  assert losses.d_input(a, b[..., :1]).shape == (1, 2, 2, 4)
  assert losses.d_input(a, b, conditional=False).shape == (1, 2, 2, 3)


def test_wgangp_terms_known_values():
  r, f = jnp.asarray([1.0, 3.0]), jnp.asarray([-2.0, 0.0])
  real, fake = losses.d_loss_terms(r, f, 'wgangp')  # -mean D(real), mean D(fake).
  assert (float(real), float(fake)) == (-2.0, -1.0)
  np.testing.assert_allclose(losses.g_gan_loss(f, 'wgangp'), 1.0)


def test_gradient_penalty_of_a_linear_critic():
  # D(x) = <w, x> per example: its input gradient is w everywhere, so the penalty is
  # lambda * (|w| - 1)^2 whatever the interpolation weights.
  w = jnp.asarray(np.random.default_rng(0).normal(size=(4, 4, 2)), jnp.float32)
  d_fn = lambda x: jnp.sum(x * w, axis=(1, 2, 3))  # noqa: E731
  real, fake = jnp.ones((3, 4, 4, 2)), -jnp.ones((3, 4, 4, 2))
  want = 10.0 * (float(jnp.linalg.norm(w)) - 1.0) ** 2
  for alpha in ([0.0, 0.5, 1.0], [0.3, 0.3, 0.9]):
    gp = losses.gradient_penalty(d_fn, real, fake, jnp.asarray(alpha))
    np.testing.assert_allclose(gp, want, rtol=1e-5)
  unit = lambda x: jnp.sum(x * w / jnp.linalg.norm(w), axis=(1, 2, 3))  # noqa: E731
  assert float(losses.gradient_penalty(unit, real, fake, jnp.full((3,), 0.5))) < 1e-8
  np.testing.assert_allclose(losses.gradient_penalty(d_fn, real, fake, jnp.zeros(3),
                                                     lambda_gp=1.0, constant=0.0),
                             float(jnp.sum(w * w)), rtol=1e-5)


def test_wgangp_train_step_adds_the_penalty_to_d_only():
  import jax
  from conftest import tiny_config

  from p2p_jax.pix2pix import create_train_state, make_networks, train_step

  rng = np.random.default_rng(0)
  batch = {'input': rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32),
           'target': rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)}
  out = {}
  for lam in (0.0, 10.0):
    c = tiny_config(**{'loss.gan_mode': 'wgangp', 'loss.lambda_gp': lam, 'model.dropout': 0.0})
    nets = make_networks(c, 3)
    state = create_train_state(nets, 0, (32, 32, 3), 3)
    out[lam] = jax.jit(lambda s, b, n=nets: train_step(s, b, nets=n))(state, batch)
  (s0, m0), (s10, m10) = out[0.0], out[10.0]
  assert np.isfinite(float(m10['d_loss'])) and np.isfinite(float(m10['g_loss']))
  # Same forward losses (the logged d_loss is the Wasserstein part), different D gradients.
  np.testing.assert_allclose(m0['d_loss'], m10['d_loss'], rtol=1e-6)
  d_diff = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(s0.d_params),
                                                          jax.tree.leaves(s10.d_params)))
  assert d_diff > 1e-6
