"""U-Net generator of any depth (pix2pix, Isola et al. 2017, Sec. 3.2.1 and Appendix 6.1.1).

Encoder ``C64-C128-C256-C512-C512-C512-C512-C512`` (4x4 stride-2 convs; no norm on the
first; LeakyReLU 0.2), decoder of 4x4 stride-2 transposed convs with ReLU, skip connections
from encoder level i to decoder level n-i, and a final transposed conv to the output
channels with tanh. Errata followed: no norm on the innermost (bottleneck) level's down
path, which a batch of 1 would otherwise zero. Layer widths, biases and padding follow the
reference implementation, so parameter counts match it (U-Net-256: 54,413,955).

Dropout (rate 0.5) sits in the three innermost decoder blocks, as in the paper's
``CD512-CD1024-CD1024`` (the reference implementation shifts it one level up).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from p2p_jax.models.layers import Conv, ConvTranspose, conv_bias, make_norm


def encoder_widths(num_downs: int, ngf: int) -> list[int]:
  """Output channels of each encoder level: ngf, 2ngf, 4ngf, then 8ngf."""
  return [ngf * min(2 ** i, 8) for i in range(num_downs)]


class UNetGenerator(nn.Module):
  output_channels: int = 3
  num_downs: int = 8
  ngf: int = 64
  norm: str = 'batch'
  dropout_rate: float = 0.5
  num_dropout_blocks: int = 3
  init_std: float = 0.02
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, dropout: bool | None = None) -> jax.Array:
    """Translates ``x`` [N, H, W, C_in] in [-1, 1] to [N, H, W, output_channels] in [-1, 1].

    Args:
      train: BatchNorm uses (and, if the caller lets it, updates) the batch statistics.
      dropout: dropout active; defaults to ``train``. The paper's inference is
        ``train=True, dropout=True`` with the statistics update discarded.
    """
    dropout = train if dropout is None else dropout
    widths = encoder_widths(self.num_downs, self.ngf)
    bias = conv_bias(self.norm)
    norm = lambda: make_norm(self.norm, train=train, axis_name=self.axis_name,  # noqa: E731
                             init_std=self.init_std, dtype=self.dtype)

    skips = []
    h = x
    for i, w in enumerate(widths):
      if i > 0:
        h = nn.leaky_relu(h, 0.2)
      h = Conv(w, use_bias=bias, init_std=self.init_std, dtype=self.dtype,
               name=f'down{i}')(h)
      if 0 < i < self.num_downs - 1:
        h = norm()(h)
      skips.append(h)

    for i in reversed(range(self.num_downs)):
      h = nn.relu(h)
      if i == 0:
        h = ConvTranspose(self.output_channels, use_bias=True, init_std=self.init_std,
                          dtype=self.dtype, name='up0')(h)
        return jnp.tanh(h.astype(jnp.float32))
      h = ConvTranspose(widths[i - 1], use_bias=bias, init_std=self.init_std,
                        dtype=self.dtype, name=f'up{i}')(h)
      h = norm()(h)
      if self.num_downs - i <= self.num_dropout_blocks and self.dropout_rate > 0:
        h = nn.Dropout(self.dropout_rate, deterministic=not dropout)(h)
      h = jnp.concatenate([skips[i - 1], h], axis=-1)
    raise AssertionError('unreachable')
