"""Running the generator outside training. No TensorFlow.

Paper mode (default, pix2pix Sec. 3.3): dropout on and BatchNorm with the statistics of
the batch being translated (the running averages are not used or updated; at batch 1 this
is instance normalisation). Conventional mode: running averages, no dropout.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

GenerateFn = Callable[[dict, dict, jax.Array, jax.Array], jax.Array]


_CACHE: dict = {}


def make_generate_fn(generator, paper_mode: bool = True) -> GenerateFn:
  """Returns jitted ``generate(params, batch_stats, x, key) -> G(x)`` in [-1, 1].

  One function per (architecture, mode) in a process, so that training's sample grids,
  periodic evaluation and the sampler share compiled code.
  """
  g = generator.clone(axis_name=None)
  key = (repr(g), bool(paper_mode))
  if key not in _CACHE:
    _CACHE[key] = _build(g, bool(paper_mode))
  return _CACHE[key]


def _build(g, paper_mode: bool) -> GenerateFn:

  def generate(params, batch_stats, x, key):
    variables = {'params': params, 'batch_stats': batch_stats}
    if paper_mode:
      y, _ = g.apply(variables, x, train=True, dropout=True, rngs={'dropout': key},
                     mutable=['batch_stats'])
    else:
      y = g.apply(variables, x, train=False, dropout=False)
    return y

  return jax.jit(generate)
