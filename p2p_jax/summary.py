"""``--mode=summary``: each network's layers and exact parameter counts, without training
(pix2pix's G and D, CycleGAN's G_A, G_B, D_A and D_B).

Shapes only (``jax.eval_shape``): no data, no weights are materialised.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from p2p_jax import gan, losses
from p2p_jax.models import build_discriminator, build_generator
from p2p_jax.rng import make_key


def _rows(tree, prefix=''):
  for k, v in tree.items():
    if isinstance(v, dict):
      yield from _rows(v, f'{prefix}{k}/')
    else:
      yield f'{prefix}{k}', tuple(v.shape), int(np.prod(v.shape))


def _layer_table(params) -> list[str]:
  layers: dict[str, list] = {}
  for name, shape, n in _rows(params):
    layer, _, leaf = name.rpartition('/')
    layers.setdefault(layer, []).append((leaf, shape, n))
  lines = []
  for layer, leaves in layers.items():
    desc = ', '.join(f'{leaf}{list(shape)}' for leaf, shape, _ in leaves)
    lines.append(f'  {layer:<40s} {sum(n for *_, n in leaves):>12,d}  {desc}')
  return lines


def count_params(config: ml_collections.ConfigDict, input_channels: int,
                 output_channels: int) -> tuple[dict, dict]:
  """Abstract (shape-only) parameter trees of G and D for the config."""
  s = config.image_size
  x = jnp.zeros((1, s, s, input_channels))
  y = jnp.zeros((1, s, s, output_channels))
  g = build_generator(config, output_channels)
  d = build_discriminator(config)
  gv = jax.eval_shape(lambda: g.init(make_key(0), x, train=False))
  dv = jax.eval_shape(lambda: d.init(make_key(0),
                                     losses.d_input(x, y, config.loss.conditional_d),
                                     train=False))
  return gv['params'], dv['params']


def summary_text(config: ml_collections.ConfigDict, input_channels: int,
                 output_channels: int) -> str:
  """Every network of the configured model (``config.model.name``) with its layers and
  parameter count. pix2pix: G and D; CycleGAN: G_A, G_B, D_A, D_B (channels: A and B)."""
  model = gan.get_model(config)
  out = []
  for title, params in model.network_params(config, gan.DataInfo(input_channels,
                                                                 output_channels)):
    name = title.split(':', 1)[0]
    if out:
      out.append('')
    out.append(title)
    out += _layer_table(params)
    out.append(f'{name} parameters: {sum(n for *_, n in _rows(params)):,d}')
  return '\n'.join(out)
