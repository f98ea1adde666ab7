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
