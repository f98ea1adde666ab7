"""Random keys. The project uses the 'rbg' PRNG implementation for its keys.

XLA:CPU compiles the default threefry generator slowly: initialising even a tiny U-Net took
~23 s to compile with threefry and ~5 s with rbg (2-core CPU, 2026-11-23); dropout masks in
the train step likewise. rbg is the generator big_vision and t5x train with.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PRNG_IMPL = 'rbg'


def make_key(seed_or_key: int | jax.Array) -> jax.Array:
  """An rbg key from an int seed, or re-derived (deterministically) from any other key."""
  if isinstance(seed_or_key, int):
    return jax.random.key(seed_or_key, impl=PRNG_IMPL)
  if jax.dtypes.issubdtype(seed_or_key.dtype, jax.dtypes.prng_key) and \
      jax.random.key_impl(seed_or_key) == jax.random.key_impl(jax.random.key(0, impl=PRNG_IMPL)):
    return seed_or_key
  return jax.random.wrap_key_data(jax.random.bits(seed_or_key, (4,), jnp.uint32),
                                  impl=PRNG_IMPL)


def wrap(key_data: jax.Array) -> jax.Array:
  """The key stored (as raw data) in a TrainState."""
  return jax.random.wrap_key_data(key_data, impl=PRNG_IMPL)
