"""Fast CPU forms of the networks' 4x4 convolutions. Pure JAX; no TensorFlow.

What it buys: XLA:CPU (jaxlib 0.10) runs some of the convolutions of a U-Net / PatchGAN
train step on slow paths; these forms compute the same functions (values and gradients
equal up to float rounding, ``tests/test_cpu_ops.py``) without them. Only
``p2p_jax.convolution`` chooses between them; GPUs and TPUs run the plain ``*_xla`` forms.

Ops (NHWC inputs, HWIO kernels ``(4, 4, C_in, C_out)``, no bias):

* ``conv_transpose_4x4_s2_*``: PyTorch ``ConvTranspose2d(4, stride=2, padding=1)``,
  [N,H,W,Ci] -> [N,2H,2W,Co] (the U-Net decoder).
* ``conv_4x4_s2_*``: ``Conv2d(4, stride=2, padding=1)``, [N,H,W,Ci] -> [N,H//2,W//2,Co]
  (the U-Net encoder and the PatchGAN).
* ``conv_4x4_s1_*``: ``Conv2d(4, stride=1, padding=1)``, [N,H,W,Ci] -> [N,H-1,W-1,Co]
  (the PatchGAN's last two layers).

Forms of each op:

* ``*_xla``: the plain ``lax`` convolution, gradients by autodiff. The reference.
* ``*_fast``: chosen by static shapes at trace time: the im2col / matmul form on small,
  weight-bound maps; elsewhere the reference forward with hand-written gradients where
  XLA:CPU's own are slow (``jax.custom_vjp``, so reverse mode only; ``jit``, ``vmap`` and
  bf16 work).
* ``*_fast_eigen``: ``*_fast`` re-tuned for a step compiled with Eigen convolutions
  (``p2p_jax.cpu.xla_options``); same forward function.
* ``*_matmul``, ``conv_transpose_4x4_s2_subpixel``: building blocks of the fast forms, with
  plain autodiff; also usable alone for experiments.

The XLA:CPU behaviours worked around:

1. A convolution whose window is larger than its input gets its operands swapped and a
   window reversal, and then runs in XLA's naive loop emitter (20-100x slower): autodiff of
   the transposed convolution hits it for every kernel gradient, and maps below 4x4 hit it
   in the forward pass.
2. Kernel-gradient convolutions contract over the batch as Eigen's innermost axis, which is
   slow at batch > 1 on large maps (hence per-image or GEMM kernel gradients).
3. Input gradients convolve with a flipped, in/out-swapped kernel copy, and kernel
   gradients need the activations channel-major: XLA:CPU makes those transposed copies
   slowly. Matmuls read their operands in place, hence the matmul and GEMM forms.
4. Input-dilated convolutions (XLA's transposed conv and strided-conv input gradient) are
   slow at batch > 1 on large maps; the sub-pixel form replaces them there.
5. Convolutions inside ``lax.scan`` / ``while`` bodies stay on the slow path: the train
   step unrolls its loop (``train_step.multi_step``).

The transposed convolution decomposes into four phases (sub-pixel convolution)::

  y[n, 2m+a, 2l+b] = sum_{t,s in {0,1}} x[n, m+t-1+a, l+s-1+b] . K[2t+a, 2s+b]

(``x`` zero outside its bounds, ``a, b in {0, 1}``): each output phase is a 2x2 stride-1
convolution of ``x`` with the kernel taps ``K[a::2, b::2]``, padded ``(1-a, a)``. Its
kernel gradient is then a sum over pixels of ``x`` against shifted phases of the output
gradient: no window larger than its input, so no swapped convolution.
"""

from __future__ import annotations

import functools
import jax
import jax.numpy as jnp
from jax import lax

_DN = ('NHWC', 'HWIO', 'NHWC')

# Below this spatial product (H*W of the smaller operand) XLA:CPU swaps conv operands (see
# module docstring); the fast paths avoid handing XLA such convolutions.
_SMALL_SPATIAL = 16
# Strided conv inputs with fewer channels keep XLA's gradients: the sub-pixel input
# gradient's 2x2 phase convolutions and the GEMM kernel gradient's [pixels, 4*C_in] operand
# are too narrow to pay off (see ``_s2_subpixel_input_grad``, ``_s2_gemm_kernel_grad``).
_NARROW_C = 32
# Kernel-gradient convolutions contract over the batch as Eigen's innermost "depth" axis,
# which is slow for depth > 1 on large maps: when the smaller of the two maps (input, output)
# has >= 900 pixels (~30x30) and C_out >= 32, one kernel-gradient convolution per image,
# summed, is faster at batch 2-8. Unrolled, so only up to this batch size.
_PER_IMAGE_MIN_SPATIAL = 900
_PER_IMAGE_MIN_COUT = 32
_PER_IMAGE_MAX_BATCH = 16
# Transposed conv on maps below this H*W: backward through the sub-pixel form (its
# stride-1 phase convolutions beat the reference's strided input gradient there).
_SUBPIXEL_BWD_SPATIAL = 256
# Weight-bound maps (the inner U-Net levels) take the matmul (im2col) form: up to this
# output H*W for ``conv_4x4_s2``, and for input H*W in 2..this for the transposed conv.
_MATMUL_MAX_CONV_OUT_HW = 256
_MATMUL_MAX_CT_IN_HW = 64
# The strided conv's input gradient in sub-pixel form from this batch size (at batch 1
# XLA's input-dilated convolution is as fast or faster).
_SUBPIXEL_DX_MIN_BATCH = 2
# ``'fast_eigen'`` from this batch size: the matmul form for strided-conv outputs up to
# this many pixels only (Eigen's convolutions win above).
_EIGEN_BATCHED = 4
_EIGEN_MATMUL_MAX_CONV_OUT_HW_BATCHED = 64


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


def _adjoint_kernel(kernel: jax.Array) -> jax.Array:
  """The flipped, in/out-swapped HWIO kernel: the 4x4 stride-2 conv with it is the adjoint
  of the transposed conv with ``kernel``, and vice versa."""
  return jnp.flip(kernel, (0, 1)).swapaxes(2, 3)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _with_grads(conv, input_grad, kernel_grad, x: jax.Array, kernel: jax.Array) -> jax.Array:
  """``conv(x, kernel)`` whose input gradient is ``input_grad(kernel, g)`` and kernel
  gradient ``kernel_grad(x, kernel, g)`` (float32); either may be None for autodiff's."""
  return conv(x, kernel)


def _wg_fwd(conv, input_grad, kernel_grad, x, kernel):
  return conv(x, kernel), (x, kernel)


def _wg_bwd(conv, input_grad, kernel_grad, res, g):
  x, kernel = res
  if input_grad is None or kernel_grad is None:
    dx, dk = jax.vjp(conv, x, kernel)[1](g)  # XLA drops whichever half goes unused.
  if input_grad is not None:
    dx = input_grad(kernel, g).astype(x.dtype)
  if kernel_grad is not None:
    dk = kernel_grad(x, kernel, g).astype(kernel.dtype)
  return dx, dk


_with_grads.defvjp(_wg_fwd, _wg_bwd)


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
# (kh = 2t + a reads m + t - 1 + a).
_CT_OFF = (-1, 0, 0, 1)


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
  materialise a flipped, in/out-transposed kernel copy, which XLA:CPU transposes slowly. On
  the weight-bound inner levels (2..8 px) that copy dominates the forward pass and both
  gradients.
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


def _ct_kernel_grad(x: jax.Array, g: jax.Array) -> jax.Array:
  """Kernel gradient of the transposed conv (float32): ONE GEMM ``x^T . G16``, ``x`` in place.

  Shifting the output gradient instead of the input: with ``m' = m + off(kh)``,
  ``dK[kh, kw] = sum_{n, m', l'} x[n, m', l']^T . g[n, 2(m' - off(kh)) + kh%2,
  2(l' - off(kw)) + kw%2]`` (zero where ``m' - off`` leaves ``[0, H)``). The 16 shifted
  phase slices of ``g`` form ``G16 [N*H*W, 16*C_out]`` (4x the size of ``g``), and one GEMM
  contracts it with ``x [N*H*W, C_in]`` over the pixels. Unlike the kernel-gradient
  convolutions, no channel-major copy of ``x`` is made (XLA:CPU transposes activations
  slowly). Used on every map that takes the custom backward (H*W >= 256).
  """
  n, h, w, ci = x.shape
  co = g.shape[-1]
  gp = jnp.pad(g.reshape(n, h, 2, w, 2, co), ((0, 0), (1, 1), (0, 0), (1, 1), (0, 0), (0, 0)))
  cols = [_shifted(gp[:, :, kh % 2, :, kw % 2], -_CT_OFF[kh], -_CT_OFF[kw])
          for kh in range(4) for kw in range(4)]
  g16 = jnp.stack(cols, axis=3).reshape(n * h * w, 16 * co)
  dk = lax.dot_general(x.reshape(n * h * w, ci), g16, (((0,), (0,)), ((), ())),
                       preferred_element_type=jnp.float32)  # [C_in, (kh, kw, C_out)]
  return dk.reshape(ci, 4, 4, co).transpose(1, 2, 0, 3)


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
      computes); kernel gradient = one GEMM of ``x``, read in place, against 16 shifted
      phase slices of the output gradient (``_ct_kernel_grad``).
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
  dx = conv_4x4_s2_xla(g, _adjoint_kernel(kernel))
  return dx.astype(x.dtype), _ct_kernel_grad(x, g).astype(kernel.dtype)


_conv_transpose_4x4_s2_custom.defvjp(_ct_fast_fwd, _ct_fast_bwd)




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


def _s2_subpixel_input_grad(kernel: jax.Array, g: jax.Array) -> jax.Array:
  """Input gradient of the 4x4 stride-2 padding-1 conv (even H, W): its adjoint, the
  transposed conv of ``g`` with the flipped, in/out-swapped kernel, in sub-pixel form (four
  2x2 stride-1 convolutions). XLA's own input gradient is an input-dilated convolution,
  which XLA:CPU runs slowly at batch > 1 on large maps."""
  return conv_transpose_4x4_s2_subpixel(g, _adjoint_kernel(kernel))


def _s2_gemm_kernel_grad(x: jax.Array, kernel: jax.Array, g: jax.Array) -> jax.Array:
  """Kernel gradient of the 4x4 stride-2 padding-1 conv (even H, W) as ONE GEMM.

  With ``kh = 2u + a``: ``x_pad[2o + kh] = s2d(x_pad)[o + u, a]``, so ``dK[2u+a, 2v+b] =
  sum_{o', p'} s2d(x_pad)[o', p', (a, b)]^T . g[o' - u, p' - v]``: the space-to-depth'd
  padded input ``[N*(Ho+1)*(Wo+1), 4*C_in]`` against the four shifted copies of ``g``
  ``[N*(Ho+1)*(Wo+1), 4*C_out]``. No channel-major copy of the activations, which the
  kernel-gradient convolutions need. Slower than those for C_in < 32."""
  n, h, w, c = x.shape
  co = g.shape[-1]
  ho, wo = h // 2, w // 2
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  x4 = xp.reshape(n, ho + 1, 2, wo + 1, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(-1, 4 * c)
  gp = jnp.pad(g, ((0, 0), (1, 1), (1, 1), (0, 0)))
  g4 = jnp.stack([gp[:, 1 - u:2 - u + ho, 1 - v:2 - v + wo] for u in range(2) for v in range(2)],
                 axis=3).reshape(-1, 4 * co)  # columns (u, v, C_out)
  dk = lax.dot_general(x4, g4, (((0,), (0,)), ((), ())), preferred_element_type=jnp.float32)
  return dk.reshape(2, 2, c, 2, 2, co).transpose(3, 0, 4, 1, 2, 5).reshape(4, 4, c, co)


def _s2_per_image_kernel_grad(x: jax.Array, kernel: jax.Array, g: jax.Array) -> jax.Array:
  """One kernel-gradient convolution per image, summed (narrow C_in or odd H, W)."""
  return _sum_per_image_kernel_grads(conv_4x4_s2_xla, x, kernel, g)


def conv_4x4_s2_fast(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """CPU fast path (``'fast'``): the same function as the reference, chosen by shape.

  * outputs with H_out*W_out <= 256 (inputs up to ~32 px): the matmul form
    (``conv_4x4_s2_matmul``, plain autodiff). There the weights dominate, and XLA's
    convolutions would transpose a kernel copy for the input gradient (and, below 4x4
    outputs, swap operands into XLA:CPU's naive loop emitter);
  * otherwise the reference forward, with
    - kernel gradient: one GEMM against the space-to-depth'd input for C_in >= 32 and even
      H, W (``_s2_gemm_kernel_grad``); else, for batch 2..16 with >= 900-pixel outputs and
      >= 32 output channels, one kernel-gradient convolution per image, summed; else
      autodiff's;
    - input gradient: the sub-pixel transposed conv for batch >= 2, C_in >= 32 and even
      H, W (``_s2_subpixel_input_grad``); else autodiff's.
  """
  return _conv_4x4_s2_fast(x, kernel, per_image=True,
                           matmul_max_out_hw=_MATMUL_MAX_CONV_OUT_HW)


def _conv_4x4_s2_fast(x: jax.Array, kernel: jax.Array, per_image: bool,
                      matmul_max_out_hw: int) -> jax.Array:
  n, h, w, ci = x.shape
  out_hw = (h // 2) * (w // 2)
  if out_hw <= matmul_max_out_hw:
    return conv_4x4_s2_matmul(x, kernel)
  even = h % 2 == 0 and w % 2 == 0
  input_grad = (_s2_subpixel_input_grad
                if n >= _SUBPIXEL_DX_MIN_BATCH and ci >= _NARROW_C and even else None)
  if ci >= _NARROW_C and even:
    kernel_grad = _s2_gemm_kernel_grad
  elif per_image and _use_per_image(n, out_hw, kernel.shape[-1]):
    kernel_grad = _s2_per_image_kernel_grad
  else:
    kernel_grad = None
  if input_grad is None and kernel_grad is None:
    return conv_4x4_s2_xla(x, kernel)
  return _with_grads(conv_4x4_s2_xla, input_grad, kernel_grad, x, kernel)


def conv_4x4_s2_fast_eigen(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """``'fast'`` for a step compiled with Eigen convolutions (``'fast_eigen'``): without the
  per-image kernel gradients (Eigen's batched kernel-gradient convolution wins there), and
  from batch ``_EIGEN_BATCHED`` with the matmul form only for outputs up to
  ``_EIGEN_MATMUL_MAX_CONV_OUT_HW_BATCHED`` pixels (Eigen's forward wins above)."""
  batched = x.shape[0] >= _EIGEN_BATCHED
  return _conv_4x4_s2_fast(x, kernel, per_image=False, matmul_max_out_hw=(
      _EIGEN_MATMUL_MAX_CONV_OUT_HW_BATCHED if batched else _MATMUL_MAX_CONV_OUT_HW))




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
  the im2col patches for >= 32 output channels (XLA:CPU's kernel-gradient convolution
  first transposes the activations to channel-major). Fewer output channels keep the
  reference (a GEMM with one output column is slower)."""
  if kernel.shape[-1] >= _PER_IMAGE_MIN_COUT:
    return _with_grads(conv_4x4_s1_xla, None, _s1_gemm_kernel_grad, x, kernel)
  return conv_4x4_s1_xla(x, kernel)


def conv_4x4_s1_matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Matmul (im2col) form, plain autodiff: ``patches(x) @ K.reshape(16*C_in, C_out)``."""
  n, h, w, _ = x.shape
  co = kernel.shape[-1]
  y = jnp.dot(_s1_patches(x), kernel.reshape(-1, co), preferred_element_type=jnp.float32)
  return y.astype(jnp.result_type(x, kernel)).reshape(n, h - 1, w - 1, co)


def conv_4x4_s1_fast_eigen(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """``'fast_eigen'``: the reference (under Eigen convolutions its kernel gradient beats the
  im2col GEMM)."""
  return conv_4x4_s1_xla(x, kernel)
