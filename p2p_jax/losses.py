"""pix2pix objective as pure functions (Isola et al. 2017, Eq. 1-4).

``G* = arg min_G max_D L_cGAN(G, D) + lambda * L_L1(G)``. D's loss is halved (slows D
relative to G); G is trained non-saturating (maximise log D(x, G(x))). Inputs are D's
logits (any shape; averaged over patches and batch).

``wgangp`` is the reference implementation's WGAN-GP mode (Gulrajani et al. 2017): D's
terms are ``-D(real)`` and ``D(fake)`` (means), G's is ``-D(fake)``, and D's loss gains
:func:`gradient_penalty` (``lambda_gp * (||grad D(x_hat)||_2 - 1)^2`` at random
interpolates of the real and fake D inputs).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

GAN_MODES = ('vanilla', 'lsgan', 'hinge', 'wgangp')


def check_gan_mode(mode: str) -> None:
  if mode not in GAN_MODES:
    raise ValueError(f'Unknown loss.gan_mode {mode!r}; choose from {GAN_MODES}.')


def d_loss_terms(real_logits: jax.Array, fake_logits: jax.Array, mode: str = 'vanilla'
                 ) -> tuple[jax.Array, jax.Array]:
  """D's loss on real and on fake patches (each un-halved)."""
  check_gan_mode(mode)
  real_logits = real_logits.astype(jnp.float32)
  fake_logits = fake_logits.astype(jnp.float32)
  if mode == 'vanilla':
    real = optax.sigmoid_binary_cross_entropy(real_logits, jnp.ones_like(real_logits))
    fake = optax.sigmoid_binary_cross_entropy(fake_logits, jnp.zeros_like(fake_logits))
  elif mode == 'lsgan':
    real = jnp.square(real_logits - 1.0)
    fake = jnp.square(fake_logits)
  elif mode == 'hinge':
    real = jax.nn.relu(1.0 - real_logits)
    fake = jax.nn.relu(1.0 + fake_logits)
  else:  # wgangp: the critic's Wasserstein estimate, negated for minimisation.
    real = -real_logits
    fake = fake_logits
  return real.mean(), fake.mean()


def d_loss(real_logits: jax.Array, fake_logits: jax.Array, mode: str = 'vanilla') -> jax.Array:
  """(L_real + L_fake) / 2."""
  real, fake = d_loss_terms(real_logits, fake_logits, mode)
  return 0.5 * (real + fake)


def g_gan_loss(fake_logits: jax.Array, mode: str = 'vanilla') -> jax.Array:
  """G's adversarial loss: non-saturating BCE vs 'real' (vanilla), (D-1)^2 (lsgan), -D (hinge,
  wgangp)."""
  check_gan_mode(mode)
  fake_logits = fake_logits.astype(jnp.float32)
  if mode == 'vanilla':
    return optax.sigmoid_binary_cross_entropy(fake_logits, jnp.ones_like(fake_logits)).mean()
  if mode == 'lsgan':
    return jnp.square(fake_logits - 1.0).mean()
  return -fake_logits.mean()


def gradient_penalty(d_fn: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array,
                     alpha: jax.Array, *, constant: float = 1.0, lambda_gp: float = 10.0
                     ) -> jax.Array:
  """WGAN-GP penalty at interpolates (the reference's ``cal_gradient_penalty``, type 'mixed').

  ``x_hat = alpha * real + (1 - alpha) * fake`` per example (``alpha`` [B] in [0, 1]);
  returns ``lambda_gp * mean_b (||d sum(d_fn(x_hat)) / d x_hat_b||_2 - constant)^2``, the
  norm over all of example b's input elements (1e-16 added to each, as the reference does).
  ``real`` and ``fake`` are D's inputs (for the conditional D: input and image concatenated).
  """
  alpha = alpha.astype(jnp.float32).reshape((-1,) + (1,) * (real.ndim - 1))
  x_hat = alpha * real.astype(jnp.float32) + (1.0 - alpha) * fake.astype(jnp.float32)
  grads = jax.grad(lambda x: d_fn(x).astype(jnp.float32).sum())(x_hat)
  grads = grads.reshape(grads.shape[0], -1) + 1e-16
  norms = jnp.sqrt(jnp.sum(jnp.square(grads), axis=1))
  return lambda_gp * jnp.mean(jnp.square(norms - constant))


def l1_loss(output: jax.Array, target: jax.Array) -> jax.Array:
  """Mean absolute error."""
  return jnp.abs(output.astype(jnp.float32) - target.astype(jnp.float32)).mean()


def d_input(condition: jax.Array, image: jax.Array, conditional: bool = True) -> jax.Array:
  """What D sees: (x, y) concatenated on channels, or y alone for the unconditional ablation."""
  if conditional:
    return jnp.concatenate([condition.astype(image.dtype), image], axis=-1)
  return image


# --- CycleGAN (Zhu et al. 2017, Eq. 1-3 and Sec. 5.2; reference cycle_gan_model.py) ----------

def cyclegan_g_loss(*, d_a_fake_b: jax.Array, d_b_fake_a: jax.Array,
                    real_a: jax.Array, rec_a: jax.Array, real_b: jax.Array, rec_b: jax.Array,
                    idt_a: jax.Array | None = None, idt_b: jax.Array | None = None,
                    lambda_a: float = 10.0, lambda_b: float = 10.0,
                    lambda_identity: float = 0.5, mode: str = 'lsgan'
                    ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Both generators' loss as the reference sums it: (total, the six terms).

  ``g_a`` = GAN(D_A(G_A(A)), real), ``g_b`` = GAN(D_B(G_B(B)), real);
  ``cycle_a`` = lambda_a |G_B(G_A(A)) - A|_1 (``rec_a``), ``cycle_b`` = lambda_b
  |G_A(G_B(B)) - B|_1; identity ``idt_a`` = lambda_b lambda_identity |G_A(B) - B|_1 and
  ``idt_b`` = lambda_a lambda_identity |G_B(A) - A|_1 (zero when ``idt_a``/``idt_b``
  are None or lambda_identity is 0). L1 terms are means over all elements.
  """
  zero = jnp.zeros((), jnp.float32)
  terms = {
      'g_a': g_gan_loss(d_a_fake_b, mode),
      'g_b': g_gan_loss(d_b_fake_a, mode),
      'cycle_a': lambda_a * l1_loss(rec_a, real_a),
      'cycle_b': lambda_b * l1_loss(rec_b, real_b),
      'idt_a': (lambda_b * lambda_identity * l1_loss(idt_a, real_b)
                if idt_a is not None and lambda_identity > 0 else zero),
      'idt_b': (lambda_a * lambda_identity * l1_loss(idt_b, real_a)
                if idt_b is not None and lambda_identity > 0 else zero),
  }
  return sum(terms.values()), terms
