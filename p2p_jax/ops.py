"""Low-level ops with fast paths. Pure JAX; no TensorFlow.

``conv_transpose_4x4_s2`` is the U-Net's upsampling op: the equivalent of PyTorch's
``ConvTranspose2d(kernel_size=4, stride=2, padding=1)`` in NHWC, doubling H and W.
Kernels are HWIO, shape ``(4, 4, C_in, C_out)``.
"""

from __future__ import annotations

import jax
from jax import lax

_DN = ('NHWC', 'HWIO', 'NHWC')


def conv_transpose_4x4_s2_xla(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Reference implementation: XLA's lhs-dilated convolution, gradients by autodiff."""
  return lax.conv_transpose(x, kernel, strides=(2, 2), padding=((2, 2), (2, 2)),
                            dimension_numbers=_DN)


_IMPLS = {'xla': conv_transpose_4x4_s2_xla}


def resolve_impl(impl: str) -> str:
  """Maps 'auto' to the best implementation for the default backend."""
  if impl == 'auto':
    return 'fast' if ('fast' in _IMPLS and jax.default_backend() == 'cpu') else 'xla'
  if impl not in _IMPLS:
    raise ValueError(f'Unknown conv_transpose_impl {impl!r}; choose from '
                     f'{sorted(_IMPLS) + ["auto"]}.')
  return impl


def conv_transpose_4x4_s2(x: jax.Array, kernel: jax.Array, impl: str = 'auto') -> jax.Array:
  """4x4 stride-2 transposed convolution (PyTorch padding=1): [N,H,W,Ci] -> [N,2H,2W,Co]."""
  return _IMPLS[resolve_impl(impl)](x, kernel)
