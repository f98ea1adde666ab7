"""Low-level ops with fast paths. Pure JAX; no TensorFlow.

``conv_transpose_4x4_s2`` is the U-Net's upsampling op: the equivalent of PyTorch's
``ConvTranspose2d(kernel_size=4, stride=2, padding=1)`` in NHWC, doubling H and W.
``conv_4x4_s2`` is the downsampling op of the U-Net encoder and the PatchGAN:
``Conv2d(kernel_size=4, stride=2, padding=1)``, halving H and W (floor).
``conv_4x4_s1`` is the PatchGAN's last two layers: ``Conv2d(4, stride=1, padding=1)``.
Kernels are HWIO, shape ``(4, 4, C_in, C_out)``; no bias (add it outside).

Each op has a registry of implementations that compute the same function (values and
gradients equal up to float rounding; ``tests/test_ops.py`` checks this):

* ``'xla'``: the plain ``lax`` convolution, gradients by autodiff. The reference.
* ``'fast'``: a CPU-friendly formulation (see each ``*_fast`` docstring). ``impl='auto'``
  picks ``'fast'`` when the default backend is CPU and ``'xla'`` elsewhere (GPU/TPU
  convolutions have no such slow paths, and the fast paths are unmeasured there).
* ``'subpixel'`` (transposed conv only): the sub-pixel formulation with plain autodiff;
  kept for experiments and as a second cross-check, never picked by ``'auto'``.
* ``'matmul'`` (both 4x4 stride-2 ops): the im2col / batched-matmul form with plain
  autodiff. ``'fast'`` uses it on small maps (the weight-bound inner levels); on large
  maps it costs 16x the activation memory, so ``'auto'`` never picks it for a whole net.

The choice inside a fast path depends only on static shapes (trace time). Where a fast
path needs a ``jax.custom_vjp`` (the transposed conv always; the others only for the
per-image kernel gradient), forward-mode AD (``jax.jvp``, ``jacfwd``) is unavailable;
reverse mode, ``jit``, ``vmap`` and bf16 work.

Why XLA:CPU needs help (jaxlib 0.10.2, 2-core AVX-512 Xeon; numbers in
``docs/perf_notes.md``, reproduce with ``python -m p2p_jax.bench_ops``):

1. XLA:CPU runs a convolution on Eigen's fast spatial convolution only if it reaches the
   backend in canonical form without window reversal. The algebraic simplifier swaps the
   operands of a convolution whose window is larger than its input, which adds a window
   reversal, and the convolution then runs in XLA's naive loop emitter: 20-100x slower.
   Autodiff of the reference transposed convolution hits this for the kernel gradient at
   every decoder level (the window, the 2H x 2W output gradient, is larger than the H x W
   input): seconds per step at U-Net-256. Feature maps below 4x4 (the innermost levels)
   hit it in the forward pass and the input gradients.
2. Kernel-gradient convolutions contract over the batch as Eigen's innermost "depth" axis;
   at batch > 1 on large maps that is 2-3x slower per image than batch 1 (see
   ``_use_per_image``).
3. A convolution's input gradient convolves with the flipped, in/out-swapped kernel, which
   XLA materialises as a transposed copy; XLA:CPU transposes the minor [C_in, C_out] dims
   at about 1 GB/s (10-40 ms per inner U-Net layer, a quarter of a batch-1 train step).
   Matmuls take a transposed operand in place, hence the matmul forms on small maps.
4. (Not fixable here.) Inside ``lax.scan``/``while`` bodies XLA:CPU leaves convolutions
   non-canonical, i.e. on the naive path: keep train steps out of rolled loops on CPU
   (``unroll=True`` avoids it).

The transposed convolution decomposes into four phases (sub-pixel convolution)::

  y[n, 2m+a, 2l+b] = sum_{t,s in {0,1}} x[n, m+t-1+a, l+s-1+b] . K[2t+a, 2s+b]

(``x`` zero outside its bounds, ``a, b in {0, 1}``): each output phase is a 2x2 stride-1
convolution of ``x`` with the kernel taps ``K[a::2, b::2]``, padded ``(1-a, a)``. Its
kernel gradient per phase is then a stride-1 kernel-gradient convolution whose window (an
H x W phase of the output gradient) is no larger than its input (``x``), so it stays on
Eigen's fast path.
"""

from __future__ import annotations

import functools
from typing import Callable, Dict

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from p2p_jax.errors import ConfigError

_DN = ('NHWC', 'HWIO', 'NHWC')
# Kernel-gradient convolutions: x's batch axis is contracted (as the "feature" axis) and its
# channel axis is carried through (as the "batch" axis); the output gradient is the kernel.
_KGRAD_DN = ('CHWN', 'IHWO', 'HWNC')

# Below this spatial product (H*W of the smaller operand) XLA:CPU swaps conv operands (see
# module docstring); the fast paths avoid handing XLA such convolutions.
_SMALL_SPATIAL = 16
# Below this many output channels the per-phase kernel-gradient convolutions are narrow
# (slow in Eigen); one 3x3 kernel-gradient convolution with 4*C_out channels is faster.
_NARROW_COUT = 32
# Kernel-gradient convolutions contract over the batch as Eigen's innermost "depth" axis,
# which is slow for depth > 1 on large maps: when the smaller of the two maps (input, output)
# has >= 900 pixels (~30x30) and C_out >= 32, one kernel-gradient convolution per image,
# summed, is 1.3-2.5x faster at batch 2-8. Unrolled, so only up to this batch size.
_PER_IMAGE_MIN_SPATIAL = 900
_PER_IMAGE_MIN_COUT = 32
_PER_IMAGE_MAX_BATCH = 16
# Transposed conv on maps below this H*W: backward through the sub-pixel form (its
# stride-1 phase convolutions beat the reference's strided input gradient there).
_SUBPIXEL_BWD_SPATIAL = 256
# Transposed conv kernel gradient as nine GEMMs up to this many input pixels N*H*W
# (U-Net-256, batch 1: 16 px 29 -> 15 ms, 32 px 26 -> 17 ms; equal or slower beyond).
_GEMM_KGRAD_MAX_ROWS = 1024
# Weight-bound maps (the inner U-Net levels) take the matmul (im2col) form: up to this
# output H*W for ``conv_4x4_s2``, and for input H*W in 2..this for the transposed conv.
_MATMUL_MAX_CONV_OUT_HW = 256
_MATMUL_MAX_CT_IN_HW = 64


def _use_per_image(n: int, smaller_map_hw: int, c_out: int) -> bool:
  return (1 < n <= _PER_IMAGE_MAX_BATCH and smaller_map_hw >= _PER_IMAGE_MIN_SPATIAL
          and c_out >= _PER_IMAGE_MIN_COUT)


def _sum_per_image_kernel_grads(conv, x: jax.Array, kernel: jax.Array, g: jax.Array):
  """sum_i dconv(x[i], kernel)/dkernel . g[i], in float32: one small-depth conv per image."""
  dk = None
  for i in range(x.shape[0]):
    _, vjp = jax.vjp(lambda k, i=i: conv(x[i:i + 1], k), kernel)
    d = vjp(g[i:i + 1])[0].astype(jnp.float32)
    dk = d if dk is None else dk + d
  return dk


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _with_kernel_grad(conv, kernel_grad, x: jax.Array, kernel: jax.Array) -> jax.Array:
  """``conv(x, kernel)`` whose kernel gradient is ``kernel_grad(x, kernel, g)`` (float32);
  the input gradient is autodiff's."""
  return conv(x, kernel)


def _wkg_fwd(conv, kernel_grad, x, kernel):
  return conv(x, kernel), (x, kernel)


def _wkg_bwd(conv, kernel_grad, res, g):
  x, kernel = res
  _, vjp_x = jax.vjp(lambda a: conv(a, kernel), x)
  return vjp_x(g)[0], kernel_grad(x, kernel, g).astype(kernel.dtype)


_with_kernel_grad.defvjp(_wkg_fwd, _wkg_bwd)


# ----------------------------------------------------------------------------------------
# Transposed convolution 4x4, stride 2, padding 1.
# ----------------------------------------------------------------------------------------


def conv_transpose_4x4_s2_xla(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Reference implementation: XLA's lhs-dilated convolution, gradients by autodiff."""
  return lax.conv_transpose(x, kernel, strides=(2, 2), padding=((2, 2), (2, 2)),
                            dimension_numbers=_DN)


def _interleave_phases(phases) -> jax.Array:
  """phases[a][b]: [N,H,W,C] -> [N,2H,2W,C] with out[:, 2m+a, 2l+b] = phases[a][b][:, m, l]."""
  n, h, w, c = phases[0][0].shape
  rows = [jnp.stack(phases[a], axis=3) for a in range(2)]  # [N,H,W,2(b),C]
  return jnp.stack(rows, axis=2).reshape(n, 2 * h, 2 * w, c)  # [N,H,2(a),W,2(b),C]


# Tap kh of the transposed conv, for output row 2m + kh % 2, reads input row m + _CT_OFF[kh]
# (kh = 2t + a reads m + t - 1 + a); _SHIFT_TAPS inverts it: the taps that read row m + d.
_CT_OFF = (-1, 0, 0, 1)
_SHIFT_TAPS = {d: tuple(kh for kh in range(4) if _CT_OFF[kh] == d) for d in (-1, 0, 1)}


def _shifted(xp: jax.Array, dh: int, dw: int) -> jax.Array:
  """``x[:, m + dh, l + dw]`` for every (m, l), zero outside, from ``xp`` = x padded by 1."""
  h, w = xp.shape[1] - 2, xp.shape[2] - 2
  return xp[:, 1 + dh:1 + dh + h, 1 + dw:1 + dw + w]


def conv_transpose_4x4_s2_matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Matmul form for small maps: one batched matmul over the 16 taps, plain autodiff.

  Tap ``(kh, kw)`` contributes ``x[m + off(kh), l + off(kw)] . K[kh, kw]`` to output pixel
  ``(2m + kh % 2, 2l + kw % 2)`` (the sub-pixel identity above, ``off = (-1, 0, 0, 1)``).
  The 16 shifted copies of ``x`` form a ``[16, N*H*W, C_in]`` batch that meets
  ``K.reshape(16, C_in, C_out)`` in one batched matmul; each output phase sums its four
  taps. Forward and both gradients are matmuls that read the kernel in place (the input
  gradient multiplies by ``K[k]^T`` without copying it), where XLA's convolutions first
  materialise a flipped, in/out-transposed kernel copy, which XLA:CPU transposes at about
  1 GB/s. On the weight-bound inner levels (2..8 px) that copy dominates: forward + both
  gradients 1.9-3.2x faster than ``'fast'``'s convolutions at batch 1, 1.1-2.8x at batch 4.
  """
  n, h, w, ci = x.shape
  co = kernel.shape[-1]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  shifted = [_shifted(xp, _CT_OFF[kh], _CT_OFF[kw]) for kh in range(4) for kw in range(4)]
  p = jnp.stack(shifted, 0).reshape(16, n * h * w, ci)
  y = lax.dot_general(p, kernel.reshape(16, ci, co), (((2,), (1,)), ((0,), (0,))),
                      preferred_element_type=jnp.float32)  # [16 = (t, a, s, b), N*H*W, Co]
  y = y.reshape(2, 2, 2, 2, n, h, w, co).sum((0, 2))  # [a, b, N, H, W, Co]
  y = y.transpose(2, 3, 0, 4, 1, 5).reshape(n, 2 * h, 2 * w, co)
  return y.astype(jnp.result_type(x, kernel))


def conv_transpose_4x4_s2_subpixel(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Sub-pixel formulation: four 2x2 stride-1 convolutions (one per output phase) + interleave.

  Plain autodiff; every forward and gradient convolution is stride 1. On CPU its forward
  and input gradient are no faster than the reference's (slower for few output channels),
  but its kernel gradient avoids the slow path; ``'fast'`` combines the best parts.
  """
  phases = [[_phase_conv(x, kernel, a, b) for b in range(2)] for a in range(2)]
  return _interleave_phases(phases)


def _phase_conv(x: jax.Array, kernel: jax.Array, a: int, b: int) -> jax.Array:
  """Output phase (a, b): 2x2 stride-1 conv with taps K[a::2, b::2], padding (1-a, a).

  Along a size-1 axis only tap 1-a meets the input; it is used alone, unpadded, so that a
  1x1 input gives a 1x1 convolution (a matmul) that XLA does not swap.
  """
  taps = kernel[a::2, b::2]
  pad_h, pad_w = (1 - a, a), (1 - b, b)
  if x.shape[1] == 1:
    taps, pad_h = taps[1 - a:2 - a], (0, 0)
  if x.shape[2] == 1:
    taps, pad_w = taps[:, 1 - b:2 - b], (0, 0)
  return lax.conv_general_dilated(x, taps, (1, 1), (pad_h, pad_w), dimension_numbers=_DN)


def _ct_kernel_grad_phases(x: jax.Array, g: jax.Array) -> jax.Array:
  """Kernel gradient of the transposed conv as four stride-1 kernel-gradient convolutions."""
  n, h, w, ci = x.shape
  co = g.shape[-1]
  per_phase = [[lax.conv_general_dilated(x, g[:, a::2, b::2, :], (1, 1),
                                         ((1 - a, a), (1 - b, b)), dimension_numbers=_KGRAD_DN,
                                         preferred_element_type=jnp.float32)
                for b in range(2)] for a in range(2)]  # [a][b] -> [2(t),2(s),Ci,Co]
  dk = jnp.stack([jnp.stack(row, 0) for row in per_phase], 0)  # [a,b,t,s,Ci,Co]
  return dk.transpose(2, 0, 3, 1, 4, 5).reshape(4, 4, ci, co)  # [(t,a),(s,b),Ci,Co]


# dK[kh] = G9[_T9[kh], ..., _A9[kh], ...] with kh = 2t+a and the 3x3 window index i = t+a.
_T9 = np.array([0, 1, 1, 2])
_A9 = np.array([0, 1, 0, 1])


def _ct_kernel_grad_3x3(x: jax.Array, g: jax.Array) -> jax.Array:
  """Kernel gradient as ONE 3x3 kernel-gradient conv against the space-to-depth'd gradient.

  Computes 36 tap/phase blocks of which 16 are needed (2.25x the FLOPs), but with 4*C_out
  output channels instead of C_out; faster when C_out is small (the RGB output layer).
  """
  n, h, w, ci = x.shape
  co = g.shape[-1]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  gs = g.reshape(n, h, 2, w, 2, co).transpose(0, 1, 3, 2, 4, 5).reshape(n, h, w, 4 * co)
  g9 = lax.conv_general_dilated(xp, gs, (1, 1), 'VALID', dimension_numbers=_KGRAD_DN,
                                preferred_element_type=jnp.float32)
  g9 = g9.reshape(3, 3, ci, 2, 2, co).transpose(0, 3, 1, 4, 2, 5)  # [i,a,j,b,Ci,Co]
  return g9[_T9[:, None], _A9[:, None], _T9[None, :], _A9[None, :]]


def _ct_kernel_grad_gemm(x: jax.Array, g: jax.Array) -> jax.Array:
  """Kernel gradient as nine GEMMs, one per input shift (d_h, d_w) in {-1, 0, 1}^2.

  ``dK[kh, kw] = x_shift(off(kh), off(kw))^T . g[:, kh%2::2, kw%2::2]``: each shifted copy
  of ``x`` meets, in one GEMM, the 1, 2 or 4 output phases whose taps read it. No transposed copy
  of ``x`` (the kernel-gradient convolutions need ``x`` channel-major, which XLA:CPU
  transposes slowly); best while N*H*W is small (see ``_GEMM_KGRAD_MAX_ROWS``).
  """
  n, h, w, ci = x.shape
  co = g.shape[-1]
  gp = g.reshape(n, h, 2, w, 2, co)
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  dk = [[None] * 4 for _ in range(4)]
  for dh, khs in _SHIFT_TAPS.items():
    for dw, kws in _SHIFT_TAPS.items():
      xs = _shifted(xp, dh, dw).reshape(n * h * w, ci)
      taps = [(kh, kw) for kh in khs for kw in kws]
      gs = jnp.stack([gp[:, :, kh % 2, :, kw % 2] for kh, kw in taps], axis=-2)
      r = lax.dot_general(xs, gs.reshape(n * h * w, len(taps) * co), (((0,), (0,)), ((), ())),
                          preferred_element_type=jnp.float32).reshape(ci, len(taps), co)
      for i, (kh, kw) in enumerate(taps):
        dk[kh][kw] = r[:, i]
  return jnp.stack([jnp.stack(row, 0) for row in dk], 0)


def _ct_kernel_grad(x: jax.Array, g: jax.Array) -> jax.Array:
  """Kernel gradient of the transposed conv (float32), choosing the fastest formulation."""
  if g.shape[-1] < _NARROW_COUT:
    return _ct_kernel_grad_3x3(x, g)
  n, h, w, _ = x.shape
  if n * h * w <= _GEMM_KGRAD_MAX_ROWS:
    return _ct_kernel_grad_gemm(x, g)
  if _use_per_image(n, h * w, g.shape[-1]):
    dk = _ct_kernel_grad_phases(x[:1], g[:1])
    for i in range(1, n):
      dk = dk + _ct_kernel_grad_phases(x[i:i + 1], g[i:i + 1])
    return dk
  return _ct_kernel_grad_phases(x, g)


def _ct_forward_fast(x: jax.Array, kernel: jax.Array) -> jax.Array:
  if x.shape[1] * x.shape[2] < _SMALL_SPATIAL:  # In practice 1x1 (2..64 take the matmul).
    return conv_transpose_4x4_s2_subpixel(x, kernel)
  return conv_transpose_4x4_s2_xla(x, kernel)


def conv_transpose_4x4_s2_fast(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """CPU fast path (``'fast'``): same function as the reference, chosen by map size.

  * input H*W in 2..64 (the weight-bound 2..8 px levels): the matmul form
    (``conv_transpose_4x4_s2_matmul``, plain autodiff);
  * otherwise a ``custom_vjp`` (``_conv_transpose_4x4_s2_custom``):

    - forward: the reference (bit-identical), or the sub-pixel form for a 1x1 input
      (the reference would take XLA's slow swapped-operand path);
    - backward on maps with H*W < 256: autodiff of the sub-pixel form (stride-1 phase
      convolutions, kernel read unflipped);
    - backward on larger maps: input gradient = the 4x4 stride-2 conv of the output
      gradient with the flipped, in/out-swapped kernel (what autodiff of the reference
      computes); kernel gradient = nine GEMMs, one per input shift, while N*H*W <= 1024
      (``_ct_kernel_grad_gemm``), else per-phase stride-1 kernel-gradient convolutions
      (``_ct_kernel_grad_phases``; one per image for batch 2..16 on >= 30x30 maps), or a
      single 3x3 one against the space-to-depth'd gradient for C_out < 32
      (``_ct_kernel_grad_3x3``).

  Measured forward + both gradients at the U-Net-256 decoder shapes before the matmul
  form existed (2-core CPU, f32; ``docs/perf_notes.md``): sum over the 8 decoder layers
  12x (batch 1) and 24x (batch 4) faster than ``'xla'`` (15-56x at 16..64 px inputs), and
  1.2x / 1.3x faster than ``'subpixel'`` (4.6x at the 128 px layer with 3 output
  channels). The matmul form then takes the 2, 4 and 8 px layers from 71/72/87 ms to
  22/25/47 ms (batch 1).
  """
  if 1 < x.shape[1] * x.shape[2] <= _MATMUL_MAX_CT_IN_HW:
    return conv_transpose_4x4_s2_matmul(x, kernel)
  return _conv_transpose_4x4_s2_custom(x, kernel)


@jax.custom_vjp
def _conv_transpose_4x4_s2_custom(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return _ct_forward_fast(x, kernel)


def _ct_fast_fwd(x, kernel):
  return _ct_forward_fast(x, kernel), (x, kernel)


def _ct_fast_bwd(res, g):
  x, kernel = res
  g = g.astype(x.dtype)
  if x.shape[1] * x.shape[2] < _SUBPIXEL_BWD_SPATIAL:
    # Small maps: the weights dominate; the sub-pixel backward reads them once, unflipped.
    dx, dk = jax.vjp(conv_transpose_4x4_s2_subpixel, x, kernel)[1](g)
    return dx, dk
  # Adjoint: dx[m] = sum_k g_pad1[2m+k] . K[3-k]^T, a 4x4 stride-2 padding-1 convolution.
  dx = conv_4x4_s2_xla(g, jnp.flip(kernel, (0, 1)).swapaxes(2, 3))
  return dx.astype(x.dtype), _ct_kernel_grad(x, g).astype(kernel.dtype)


_conv_transpose_4x4_s2_custom.defvjp(_ct_fast_fwd, _ct_fast_bwd)


_IMPLS: Dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    'xla': conv_transpose_4x4_s2_xla,
    'fast': conv_transpose_4x4_s2_fast,
    'subpixel': conv_transpose_4x4_s2_subpixel,
    'matmul': conv_transpose_4x4_s2_matmul,
}


def _resolve(impl: str, registry, what: str) -> str:
  if impl == 'auto':
    return 'fast' if ('fast' in registry and jax.default_backend() == 'cpu') else 'xla'
  if impl not in registry:
    raise ConfigError(f'Unknown model.{what} {impl!r}; choose from {sorted(registry) + ["auto"]}.')
  return impl


def resolve_impl(impl: str) -> str:
  """Maps 'auto' to the best transposed-conv implementation for the default backend."""
  return _resolve(impl, _IMPLS, 'conv_transpose_impl')


def conv_transpose_4x4_s2(x: jax.Array, kernel: jax.Array, impl: str = 'auto') -> jax.Array:
  """4x4 stride-2 transposed convolution (PyTorch padding=1): [N,H,W,Ci] -> [N,2H,2W,Co]."""
  return _IMPLS[resolve_impl(impl)](x, kernel)


# ----------------------------------------------------------------------------------------
# Convolution 4x4, stride 2, padding 1.
# ----------------------------------------------------------------------------------------


def conv_4x4_s2_xla(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Reference implementation: XLA's strided convolution, gradients by autodiff."""
  return lax.conv_general_dilated(x, kernel, (2, 2), ((1, 1), (1, 1)), dimension_numbers=_DN)


def _im2col_4x4(x: jax.Array, stride: int, ho: int, wo: int) -> jax.Array:
  """Patches of a 4x4 padding-1 conv: [N*Ho*Wo, 16*C_in] in (kh, kw, c) order, matching
  ``kernel.reshape(16*C_in, C_out)``: row (n, o, p) holds ``x_pad[n, s*o+kh, s*p+kw, :]``."""
  n, ci = x.shape[0], x.shape[-1]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  span_h, span_w = stride * (ho - 1) + 1, stride * (wo - 1) + 1
  p = jnp.stack([xp[:, kh:kh + span_h:stride, kw:kw + span_w:stride]
                 for kh in range(4) for kw in range(4)], axis=3)  # [N, Ho, Wo, 16, Ci]
  return p.reshape(n * ho * wo, 16 * ci)


def conv_4x4_s2_matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Matmul (im2col) form: ``patches[N*Ho*Wo, 16*C_in] @ K.reshape(16*C_in, C_out)``.

  ``patches[(n, o, p), (kh, kw, c)] = x_pad[n, 2o+kh, 2p+kw, c]`` (16 strided slices of the
  padded input). Plain autodiff: the gradients are a matmul with the kernel read in place
  (``dy @ K^T``, no copy) and ``patches^T @ dy``; XLA's strided convolution would instead
  materialise a flipped, in/out-transposed kernel copy for its input gradient. A 1x1
  output (2-3 px input) multiplies by the taps that meet the input only. Odd H/W: the last
  padding row/column is never read.
  """
  n, h, w, ci = x.shape
  co = kernel.shape[-1]
  ho, wo = h // 2, w // 2
  out_dtype = jnp.result_type(x, kernel)
  if ho == 1 and wo == 1:  # The window meets x[i, j] with tap (i+1, j+1) only.
    y = jnp.dot(x.reshape(n, h * w * ci), kernel[1:1 + h, 1:1 + w].reshape(h * w * ci, co),
                preferred_element_type=jnp.float32)
    return y.astype(out_dtype).reshape(n, 1, 1, co)
  y = jnp.dot(_im2col_4x4(x, 2, ho, wo), kernel.reshape(16 * ci, co),
              preferred_element_type=jnp.float32)
  return y.astype(out_dtype).reshape(n, ho, wo, co)


def _s2_per_image_kernel_grad(x: jax.Array, kernel: jax.Array, g: jax.Array) -> jax.Array:
  return _sum_per_image_kernel_grads(conv_4x4_s2_xla, x, kernel, g)


def _conv_4x4_s2_small_or_xla(x: jax.Array, kernel: jax.Array) -> jax.Array:
  if (x.shape[1] // 2) * (x.shape[2] // 2) <= _MATMUL_MAX_CONV_OUT_HW:
    return conv_4x4_s2_matmul(x, kernel)
  return conv_4x4_s2_xla(x, kernel)


def conv_4x4_s2_fast(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """CPU fast path (``'fast'``); plain autodiff except for the per-image kernel gradient.

  * outputs with H_out*W_out <= 256 (inputs up to ~32 px): the matmul form
    (``conv_4x4_s2_matmul``). There the weights dominate, and XLA's convolutions would
    transpose a kernel copy for the input gradient (and, below 4x4 outputs, swap operands
    into XLA:CPU's naive loop emitter);
  * otherwise the reference, and for batch 2..16 with >= 900-pixel outputs and >= 32
    output channels, a kernel gradient summed over one convolution per image.

  Measured forward + both gradients at the U-Net-256 encoder and PatchGAN shapes: sum
  1.2x (batch 1) / 1.4x (batch 4) faster than ``'xla'`` (1.5-2.9x at 2-4 px inputs,
  1.2-1.7x at 64-256 px with batch 4); whole U-Net-256 + PatchGAN forward+backward with the
  fast transposed conv: 3% (batch 1) / 12-15% (batch 4) faster than with ``'xla'`` convs.
  The matmul form, added later, takes the 4..32 px encoder layers from 22/18/25/23 ms to
  5/4/14/19 ms (batch 1) and from 31/27/65/101 ms to 7/14/35/99 ms (batch 4).
  """
  n, co = x.shape[0], kernel.shape[-1]
  if _use_per_image(n, (x.shape[1] // 2) * (x.shape[2] // 2), co):
    return _with_kernel_grad(conv_4x4_s2_xla, _s2_per_image_kernel_grad, x, kernel)
  return _conv_4x4_s2_small_or_xla(x, kernel)


_CONV_IMPLS: Dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    'xla': conv_4x4_s2_xla,
    'fast': conv_4x4_s2_fast,
    'matmul': conv_4x4_s2_matmul,
}


def resolve_conv_impl(impl: str) -> str:
  """Maps 'auto' to the best strided-conv implementation for the default backend."""
  return _resolve(impl, _CONV_IMPLS, 'conv_impl')


def conv_4x4_s2(x: jax.Array, kernel: jax.Array, impl: str = 'auto') -> jax.Array:
  """4x4 stride-2 convolution, padding 1 (PyTorch Conv2d(4, 2, 1)).

  [N,H,W,Ci] -> [N,H//2,W//2,Co]."""
  return _CONV_IMPLS[resolve_conv_impl(impl)](x, kernel)


# ----------------------------------------------------------------------------------------
# Convolution 4x4, stride 1, padding 1 (the PatchGAN's last two layers).
# ----------------------------------------------------------------------------------------


def conv_4x4_s1_xla(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Reference implementation: [N,H,W,Ci] -> [N,H-1,W-1,Co], gradients by autodiff."""
  return lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_DN)


def _s1_patches(x: jax.Array) -> jax.Array:
  """im2col of the 4x4 stride-1 padding-1 conv: [N*(H-1)*(W-1), 16*C_in]."""
  return _im2col_4x4(x, 1, x.shape[1] - 1, x.shape[2] - 1)


def _s1_gemm_kernel_grad(x: jax.Array, kernel: jax.Array, g: jax.Array) -> jax.Array:
  """Kernel gradient of the 4x4 stride-1 conv as one GEMM: ``patches(x)^T @ dy`` (float32)."""
  co = g.shape[-1]
  dk = lax.dot_general(_s1_patches(x), g.reshape(-1, co), (((0,), (0,)), ((), ())),
                       preferred_element_type=jnp.float32)
  return dk.reshape(kernel.shape)


def conv_4x4_s1_fast(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """CPU fast path (``'fast'``): the reference, with the kernel gradient as one GEMM against
  the im2col patches for >= 32 output channels (the PatchGAN's 256 -> 512 layer at 32x32:
  kernel gradient 49 -> 28 ms at batch 1, 166 -> 124 ms at batch 4 against the per-image
  convolutions, which XLA:CPU runs after transposing the activations to channel-major).
  The 512 -> 1 layer keeps the reference (a GEMM with one output column is slower)."""
  if kernel.shape[-1] >= _PER_IMAGE_MIN_COUT:
    return _with_kernel_grad(conv_4x4_s1_xla, _s1_gemm_kernel_grad, x, kernel)
  return conv_4x4_s1_xla(x, kernel)


def conv_4x4_s1_matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Matmul (im2col) form, plain autodiff: ``patches(x) @ K.reshape(16*C_in, C_out)``."""
  n, h, w, _ = x.shape
  co = kernel.shape[-1]
  y = jnp.dot(_s1_patches(x), kernel.reshape(-1, co), preferred_element_type=jnp.float32)
  return y.astype(jnp.result_type(x, kernel)).reshape(n, h - 1, w - 1, co)


_CONV_S1_IMPLS: Dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    'xla': conv_4x4_s1_xla,
    'fast': conv_4x4_s1_fast,
    'matmul': conv_4x4_s1_matmul,
}


def conv_4x4_s1(x: jax.Array, kernel: jax.Array, impl: str = 'auto') -> jax.Array:
  """4x4 stride-1 convolution, padding 1 (PyTorch Conv2d(4, 1, 1)): [N,H,W,Ci] -> [N,H-1,W-1,Co].

  ``impl`` as for ``conv_4x4_s2`` (same names, same ``resolve_conv_impl``).
  """
  return _CONV_S1_IMPLS[resolve_conv_impl(impl)](x, kernel)
