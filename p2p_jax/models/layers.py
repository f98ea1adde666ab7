"""Convolutions and normalisation shared by the generators and discriminators.

Padding and bias conventions follow the pix2pix reference implementation so that parameter
counts match it exactly: 4x4 convs with padding 1, weights ~ N(0, init_std). How a
convolution is computed on each backend is ``p2p_jax.convolution``'s business.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from p2p_jax import convolution

Dtype = Any


class Conv(nn.Module):
  """k x k convolution with symmetric padding ``padding`` (PyTorch Conv2d semantics)."""

  features: int
  kernel_size: int = 4
  stride: int = 2
  padding: int = 1
  use_bias: bool = False
  init_std: float = 0.02
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param('kernel', nn.initializers.normal(self.init_std),
                        (k, k, x.shape[-1], self.features), jnp.float32)
    x = x.astype(self.dtype)
    kernel = kernel.astype(self.dtype)
    y = convolution.conv(x, kernel, self.stride, self.padding)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32
                         ).astype(self.dtype)
    return y


class ConvTranspose(nn.Module):
  """4x4 stride-2 transposed conv (PyTorch ConvTranspose2d(4, 2, padding=1)): doubles H, W."""

  features: int
  use_bias: bool = False
  init_std: float = 0.02
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.normal(self.init_std),
                        (4, 4, x.shape[-1], self.features), jnp.float32)
    y = convolution.conv_transpose_4x4_s2(x.astype(self.dtype), kernel.astype(self.dtype))
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32
                         ).astype(self.dtype)
    return y


NORMS = ('batch', 'instance', 'none')


def _normal_around_one(std: float) -> nn.initializers.Initializer:
  """Initializer drawing from N(1, std)."""
  normal = nn.initializers.normal(std)
  return lambda key, shape, dtype=jnp.float32: 1.0 + normal(key, shape, dtype)


def make_norm(kind: str, *, train: bool, axis_name: str | None = None,
              init_std: float = 0.02,
              dtype: Dtype = jnp.float32) -> Callable[[jax.Array], jax.Array]:
  """Returns a norm layer constructor call (to be used inside ``@nn.compact``).

  'batch': BatchNorm with PyTorch's defaults (momentum 0.1 -> flax 0.9, eps 1e-5, affine)
    and the reference's init (scale ~ N(1, init_std), bias 0); statistics of the current
    batch when ``train`` (synchronised over ``axis_name`` when given), running averages
    otherwise.
  'instance': InstanceNorm without affine parameters (the reference's default).
  'none': identity.
  """
  if kind == 'batch':
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        axis_name=axis_name, dtype=dtype, param_dtype=jnp.float32,
                        scale_init=_normal_around_one(init_std),
                        bias_init=nn.initializers.zeros)
  if kind == 'instance':
    return nn.InstanceNorm(epsilon=1e-5, use_scale=False, use_bias=False, dtype=dtype,
                           param_dtype=jnp.float32)
  if kind == 'none':
    return lambda x: x
  raise ValueError(f'Unknown norm {kind!r}; choose from {NORMS}.')


def conv_bias(norm: str) -> bool:
  """Whether a conv followed by ``norm`` carries a bias (reference rule: only without BN)."""
  return norm != 'batch'
