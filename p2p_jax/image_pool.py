"""CycleGAN's history of generated images (Shrivastava et al. 2017; reference ``ImagePool``).

D is trained on fakes drawn from a pool of the last generated images rather than only the
newest ones. The reference rule, per image of a batch, in order:

* while the pool holds fewer than ``size`` images, store the new image and return it;
* once full, with probability 0.5 return a random stored image and put the new image in
  its slot; otherwise return the new image (the pool is unchanged).

Here the pool is a fixed-size array plus a count, and the randomness comes from a key the
caller derives from its train state, so a query is a pure function and the whole train
step stays one jitted computation. ``size`` 0 disables the pool (queries return their
input).
"""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
from jax import lax


@flax.struct.dataclass
class ImagePool:
  images: jax.Array  # [size, H, W, C]; slots at index >= count are unused zeros.
  count: jax.Array  # int32 scalar: images stored so far (at most size).

  @property
  def size(self) -> int:
    return self.images.shape[0]


def init(size: int, image_shape: tuple[int, ...], dtype=jnp.float32) -> ImagePool:
  """An empty pool for ``size`` images of ``image_shape`` [H, W, C]."""
  return ImagePool(images=jnp.zeros((size, *image_shape), dtype),
                   count=jnp.zeros((), jnp.int32))


def _query_one(pool: ImagePool, image: jax.Array, key: jax.Array
               ) -> tuple[ImagePool, jax.Array]:
  size = pool.size
  k_coin, k_slot = jax.random.split(key)
  full = pool.count >= size
  swap = full & (jax.random.uniform(k_coin) > 0.5)
  slot = jnp.where(full, jax.random.randint(k_slot, (), 0, size), pool.count)
  stored = lax.dynamic_index_in_dim(pool.images, slot, keepdims=False)
  out = jnp.where(swap, stored, image)
  write = swap | ~full
  new = jnp.where(write, image, stored)
  images = lax.dynamic_update_index_in_dim(pool.images, new.astype(pool.images.dtype), slot, 0)
  return ImagePool(images=images, count=jnp.minimum(pool.count + 1, size)), out


def query(pool: ImagePool, images: jax.Array, key: jax.Array) -> tuple[ImagePool, jax.Array]:
  """Returns (updated pool, images for D): one image per input, in order, by the rule above.

  ``images`` [B, H, W, C] are treated as constants (no gradient flows through the pool).
  """
  images = lax.stop_gradient(images)
  if pool.size == 0:
    return pool, images
  keys = jax.random.split(key, images.shape[0])
  pool, out = lax.scan(lambda p, xk: _query_one(p, *xk), pool, (images, keys))
  return pool, out.astype(images.dtype)
