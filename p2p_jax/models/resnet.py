"""ResNet generator (CycleGAN, Zhu et al. 2017, Appendix 7.2; Johnson et al. 2016).

As the reference implementation's ``ResnetGenerator`` builds it::

  c7s1-64:  reflection pad 3, 7x7 conv (ngf), norm, ReLU
  d128:     3x3 conv stride 2 padding 1 (2 ngf), norm, ReLU
  d256:     3x3 conv stride 2 padding 1 (4 ngf), norm, ReLU
  R256 x n: x + [reflection pad 1, 3x3 conv, norm, ReLU, reflection pad 1, 3x3 conv, norm](x)
            (no ReLU after the add)
  u128:     3x3 transposed conv stride 2, padding 1, output padding 1 (2 ngf), norm, ReLU
  u64:      the same to ngf
  c7s1-out: reflection pad 3, 7x7 conv (output channels, with bias), tanh

Convs keep their bias unless the norm is BatchNorm (the reference's rule); weights
~ N(0, init_std), biases 0; no dropout (CycleGAN's ``--no_dropout``). With instance norm
(no affine parameters, eps 1e-5) and 3 -> 3 channels: 9 blocks 11,378,179 parameters
(``resnet_9blocks``, 256 px), 6 blocks 7,837,699 (``resnet_6blocks``, 128 px). Image
sides must be multiples of 4 and at least 8 (reflection padding needs more pixels than it
pads).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from p2p_jax.models.layers import Conv, conv_bias, make_norm

_DN = ('NHWC', 'HWIO', 'NHWC')


def reflection_pad(x: jax.Array, p: int) -> jax.Array:
  """PyTorch ``ReflectionPad2d(p)`` on NHWC: mirror without repeating the edge pixel."""
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode='reflect')


def _bias(module: nn.Module, y: jax.Array, features: int, dtype: Any) -> jax.Array:
  return y + module.param('bias', nn.initializers.zeros, (features,), jnp.float32).astype(dtype)


class PlainConvTranspose(nn.Module):
  """PyTorch ``ConvTranspose2d(k, stride, padding, output_padding)`` on NHWC.

  Output side ``(n - 1) * stride - 2 * padding + k + output_padding``. Computed as a
  convolution of the stride-dilated input, padded ``(k-1-p, k-1-p+output_padding)``, with
  the spatially flipped kernel. The kernel is stored ``[k, k, in, out]``:
  ``kernel[i, j, c, o] == torch_weight[c, o, i, j]``.
  """

  features: int
  kernel_size: int = 3
  stride: int = 2
  padding: int = 1
  output_padding: int = 1
  use_bias: bool = True
  init_std: float = 0.02
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    k, s, p, op = self.kernel_size, self.stride, self.padding, self.output_padding
    kernel = self.param('kernel', nn.initializers.normal(self.init_std),
                        (k, k, x.shape[-1], self.features), jnp.float32)
    lo, hi = k - 1 - p, k - 1 - p + op
    y = lax.conv_general_dilated(x.astype(self.dtype), kernel[::-1, ::-1].astype(self.dtype),
                                 (1, 1), ((lo, hi), (lo, hi)), lhs_dilation=(s, s),
                                 dimension_numbers=_DN)
    return _bias(self, y, self.features, self.dtype) if self.use_bias else y


class ResnetBlock(nn.Module):
  """``x + [reflpad 1, conv3, norm, ReLU, reflpad 1, conv3, norm](x)``."""

  norm: str = 'instance'
  init_std: float = 0.02
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    c = x.shape[-1]
    conv = lambda: Conv(c, kernel_size=3, stride=1, padding=0,  # noqa: E731
                        use_bias=conv_bias(self.norm), init_std=self.init_std, dtype=self.dtype)
    norm = lambda: make_norm(self.norm, train=train, axis_name=self.axis_name,  # noqa: E731
                             dtype=self.dtype)
    h = nn.relu(norm()(conv()(reflection_pad(x, 1))))
    h = norm()(conv()(reflection_pad(h, 1)))
    return x + h


class ResnetGenerator(nn.Module):
  output_channels: int = 3
  num_blocks: int = 9
  ngf: int = 64
  norm: str = 'instance'
  init_std: float = 0.02
  axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, dropout: bool | None = None) -> jax.Array:
    """Translates ``x`` [N, H, W, C_in] in [-1, 1] to [N, H, W, output_channels] in [-1, 1].

    ``train`` matters only for BatchNorm; ``dropout`` is accepted for interface parity
    with the U-Net and ignored (this generator has none).
    """
    del dropout
    bias = conv_bias(self.norm)
    kw = dict(init_std=self.init_std, dtype=self.dtype)
    norm = lambda: make_norm(self.norm, train=train, axis_name=self.axis_name,  # noqa: E731
                             dtype=self.dtype)
    h = Conv(self.ngf, kernel_size=7, stride=1, padding=0, use_bias=bias, name='c7s1_in',
             **kw)(reflection_pad(x, 3))
    h = nn.relu(norm()(h))
    for i in range(2):
      h = Conv(self.ngf * 2 ** (i + 1), kernel_size=3, stride=2, padding=1, use_bias=bias,
               name=f'down{i}', **kw)(h)
      h = nn.relu(norm()(h))
    for i in range(self.num_blocks):
      h = ResnetBlock(self.norm, self.init_std, self.axis_name, self.dtype,
                      name=f'block{i}')(h, train=train)
    for i in range(2):
      h = PlainConvTranspose(self.ngf * 2 ** (1 - i), use_bias=bias, name=f'up{i}', **kw)(h)
      h = nn.relu(norm()(h))
    h = Conv(self.output_channels, kernel_size=7, stride=1, padding=0, use_bias=True,
             name='c7s1_out', **kw)(reflection_pad(h, 3))
    return jnp.tanh(h.astype(jnp.float32))
