"""U-Net generator of any depth (pix2pix, Isola et al. 2017, Sec. 3.2.1 and Appendix 6.1.1).

Encoder ``C64-C128-C256-C512-C512-C512-C512-C512`` (4x4 stride-2 convs; no norm on the
first; LeakyReLU 0.2), decoder of 4x4 stride-2 transposed convs with ReLU, skip connections
from encoder level i to decoder level n-i, and a final transposed conv to the output
channels with tanh. Errata followed: no norm on the innermost (bottleneck) level's down
path, which a batch of 1 would otherwise zero. Layer widths, biases and padding follow the
reference implementation, so parameter counts match it (U-Net-256: 54,413,955).

Dropout (rate 0.5) follows ``dropout_placement``: ``'paper'`` puts it in the three innermost
decoder blocks, the paper's ``CD512-CD1024-CD1024``; ``'reference'`` where the reference
implementation has it, one level out: after the ``num_downs - 5`` middle 8*ngf decoder blocks
that wrap the innermost one (three at 256 px, two at 128, none at 32), never the innermost.
Checkpoints converted from the reference's PyTorch generators use ``'reference'``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from p2p_jax.models.layers import Conv, ConvTranspose, conv_bias, make_norm


DROPOUT_PLACEMENTS = ('paper', 'reference')


def dropout_levels(num_downs: int, placement: str = 'paper', num_blocks: int = 3) -> set[int]:
  """Decoder levels i (the block ``up{i}``, i = num_downs - 1 innermost) followed by dropout.

  'paper': the ``num_blocks`` innermost. 'reference': levels 4 .. num_downs - 2, the blocks
  the reference's ``UnetGenerator`` builds with ``use_dropout`` (``num_downs - 5`` of them).
  """
  if placement == 'paper':
    return set(range(max(num_downs - num_blocks, 1), num_downs))
  if placement == 'reference':
    return set(range(4, num_downs - 1))
  raise ValueError(f'Unknown dropout_placement {placement!r}; choose from {DROPOUT_PLACEMENTS}.')


def encoder_widths(num_downs: int, ngf: int) -> list[int]:
  """Output channels of each encoder level: ngf, 2ngf, 4ngf, then 8ngf."""
  return [ngf * min(2 ** i, 8) for i in range(num_downs)]


class UNetGenerator(nn.Module):
  output_channels: int = 3
  num_downs: int = 8
  ngf: int = 64
  norm: str = 'batch'
  dropout_rate: float = 0.5
  num_dropout_blocks: int = 3  # With dropout_placement 'paper'.
  dropout_placement: str = 'paper'  # 'paper' or 'reference' (see the module docstring).
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
    with_dropout = dropout_levels(self.num_downs, self.dropout_placement,
                                  self.num_dropout_blocks)
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
      if i in with_dropout and self.dropout_rate > 0:
        h = nn.Dropout(self.dropout_rate, deterministic=not dropout)(h)
      h = jnp.concatenate([skips[i - 1], h], axis=-1)
    raise AssertionError('unreachable')
