"""PatchGAN discriminators (pix2pix Sec. 3.2.2 and Appendix 6.1.2).

``NLayerDiscriminator`` with ``n_layers=3`` is the 70x70 PatchGAN ``C64-C128-C256-C512``:
4x4 convs, stride 2 for the first ``n_layers`` and stride 1 for the last C512 and the
1-channel output conv (padding 1), no norm on the first layer, LeakyReLU 0.2. It returns a
map of logits, one per overlapping patch; losses average over it. Receptive field:
n_layers 1 -> 16x16, 3 -> 70x70, 5 -> 286x286 (ImageGAN at 256 px).
``PixelDiscriminator`` is the 1x1 PixelGAN.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from p2p_jax.models.layers import Conv, conv_bias, make_norm


def patch_receptive_field(n_layers: int) -> int:
  """Receptive field in pixels of an n-layer PatchGAN output unit."""
  rf = 1
  for stride in reversed([2] * n_layers + [1, 1]):
    rf = rf * stride + (4 - stride)
  return rf


class NLayerDiscriminator(nn.Module):
  ndf: int = 64
  n_layers: int = 3
  norm: str = 'batch'
  init_std: float = 0.02
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    bias = conv_bias(self.norm)
    h = Conv(self.ndf, stride=2, use_bias=True, init_std=self.init_std, dtype=self.dtype)(x)
    h = nn.leaky_relu(h, 0.2)
    for n in range(1, self.n_layers + 1):
      stride = 2 if n < self.n_layers else 1
      h = Conv(self.ndf * min(2 ** n, 8), stride=stride, use_bias=bias,
               init_std=self.init_std, dtype=self.dtype)(h)
      h = make_norm(self.norm, train=train, axis_name=self.axis_name, init_std=self.init_std,
                    dtype=self.dtype)(h)
      h = nn.leaky_relu(h, 0.2)
    h = Conv(1, stride=1, use_bias=True, init_std=self.init_std, dtype=self.dtype)(h)
    return h.astype(jnp.float32)


class PixelDiscriminator(nn.Module):
  """1x1 PixelGAN: classifies every pixel independently (C64-C128, 1x1 convs)."""

  ndf: int = 64
  norm: str = 'batch'
  init_std: float = 0.02
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    bias = conv_bias(self.norm)
    conv = lambda f, b: Conv(f, kernel_size=1, stride=1, padding=0, use_bias=b,  # noqa: E731
                             init_std=self.init_std, dtype=self.dtype)
    h = nn.leaky_relu(conv(self.ndf, True)(x), 0.2)
    h = conv(self.ndf * 2, bias)(h)
    h = make_norm(self.norm, train=train, axis_name=self.axis_name, init_std=self.init_std,
                  dtype=self.dtype)(h)
    h = nn.leaky_relu(h, 0.2)
    return conv(1, bias)(h).astype(jnp.float32)
