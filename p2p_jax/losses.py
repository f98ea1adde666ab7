"""pix2pix objective as pure functions (Isola et al. 2017, Eq. 1-4).

``G* = arg min_G max_D L_cGAN(G, D) + lambda * L_L1(G)``. D's loss is halved (slows D
relative to G); G is trained non-saturating (maximise log D(x, G(x))). Inputs are D's
logits (any shape; averaged over patches and batch).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

GAN_MODES = ('vanilla', 'lsgan', 'hinge')


def _check(mode: str) -> None:
  if mode not in GAN_MODES:
    raise ValueError(f'Unknown loss.gan_mode {mode!r}; choose from {GAN_MODES}.')


def d_loss_terms(real_logits: jax.Array, fake_logits: jax.Array, mode: str = 'vanilla'
                 ) -> tuple[jax.Array, jax.Array]:
  """D's loss on real and on fake patches (each un-halved)."""
  _check(mode)
  real_logits = real_logits.astype(jnp.float32)
  fake_logits = fake_logits.astype(jnp.float32)
  if mode == 'vanilla':
    real = optax.sigmoid_binary_cross_entropy(real_logits, jnp.ones_like(real_logits))
    fake = optax.sigmoid_binary_cross_entropy(fake_logits, jnp.zeros_like(fake_logits))
  elif mode == 'lsgan':
    real = jnp.square(real_logits - 1.0)
    fake = jnp.square(fake_logits)
  else:  # hinge
    real = jax.nn.relu(1.0 - real_logits)
    fake = jax.nn.relu(1.0 + fake_logits)
  return real.mean(), fake.mean()


def d_loss(real_logits: jax.Array, fake_logits: jax.Array, mode: str = 'vanilla') -> jax.Array:
  """(L_real + L_fake) / 2."""
  real, fake = d_loss_terms(real_logits, fake_logits, mode)
  return 0.5 * (real + fake)


def g_gan_loss(fake_logits: jax.Array, mode: str = 'vanilla') -> jax.Array:
  """G's adversarial loss: non-saturating BCE vs 'real' (vanilla), (D-1)^2 (lsgan), -D (hinge)."""
  _check(mode)
  fake_logits = fake_logits.astype(jnp.float32)
  if mode == 'vanilla':
    return optax.sigmoid_binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits)).mean()
  if mode == 'lsgan':
    return jnp.square(fake_logits - 1.0).mean()
  return -fake_logits.mean()


def l1_loss(output: jax.Array, target: jax.Array) -> jax.Array:
  """Mean absolute error."""
  return jnp.abs(output.astype(jnp.float32) - target.astype(jnp.float32)).mean()


def d_input(condition: jax.Array, image: jax.Array, conditional: bool = True) -> jax.Array:
  """What D sees: (x, y) concatenated on channels, or y alone for the unconditional ablation."""
  if conditional:
    return jnp.concatenate([condition.astype(image.dtype), image], axis=-1)
  return image
