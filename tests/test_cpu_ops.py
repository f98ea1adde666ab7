"""The CPU forms of p2p_jax.cpu.ops against the XLA references: values and both gradients.

Tests that read XLA:CPU's compiled HLO depend on XLA internals: they run on the jaxlib
versions of ``xla_options.JAXLIB_RANGE``, where they fail (never skip) when XLA changes.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from p2p_jax.cpu import ops, xla_options

CT = {'fast': ops.conv_transpose_4x4_s2_fast, 'subpixel': ops.conv_transpose_4x4_s2_subpixel,
      'matmul': ops.conv_transpose_4x4_s2_matmul, 'xla': ops.conv_transpose_4x4_s2_xla}
S2 = {'fast': ops.conv_4x4_s2_fast, 'fast_eigen': ops.conv_4x4_s2_fast_eigen,
      'matmul': ops.conv_4x4_s2_matmul, 'xla': ops.conv_4x4_s2_xla}
S1 = {'fast': ops.conv_4x4_s1_fast, 'fast_eigen': ops.conv_4x4_s1_fast_eigen,
      'matmul': ops.conv_4x4_s1_matmul, 'xla': ops.conv_4x4_s1_xla}
# Reads XLA:CPU's compiled HLO: only on the jaxlib versions the CPU tuning was measured on.
xla_cpu_internals = pytest.mark.skipif(
    jax.default_backend() != 'cpu' or not xla_options.in_range(),
    reason='XLA:CPU internals, checked on the jaxlib versions of xla_options.JAXLIB_RANGE')


def _rel_err(a, b):
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def _value_and_grads(fn, x, k, seed=1):
  """(y, dy/dx . g, dy/dk . g) for a fixed random cotangent g, computed under jit."""
  y_shape = jax.eval_shape(fn, x, k)
  g = jax.random.normal(jax.random.PRNGKey(seed), y_shape.shape, jnp.float32).astype(x.dtype)

  @jax.jit
  def run(x, k, g):
    y, vjp = jax.vjp(fn, x, k)
    return (y,) + vjp(g)

  return run(x, k, g)


def _inputs(shape_x, c_out, dtype=jnp.float32, seed=0):
  kx, kk = jax.random.split(jax.random.PRNGKey(seed))
  x = jax.random.normal(kx, shape_x, jnp.float32)
  k = 0.1 * jax.random.normal(kk, (4, 4, shape_x[-1], c_out), jnp.float32)
  return x.astype(dtype), k.astype(dtype)


# (N, H, W, C_in, C_out). They cover: batch 1 and > 1; odd/even and H != W; C_in != C_out;
# 'fast' routing by input H*W: 1 (sub-pixel forward and backward), 2..64 (matmul form),
# 65..255 (XLA forward, sub-pixel backward), >= 256 (XLA forward, adjoint-conv input
# gradient, kernel gradient as one GEMM against shifted phases of the output gradient).
CT_SHAPES = [
    (1, 1, 1, 5, 3),
    (2, 3, 4, 5, 6),
    (2, 7, 5, 3, 40),
    (1, 4, 4, 8, 3),
    (3, 5, 2, 4, 33),
    (2, 6, 9, 16, 32),
    (2, 1, 3, 5, 6),
    (1, 3, 1, 4, 34),
    (1, 9, 10, 6, 34),  # H*W = 90: sub-pixel backward.
    (2, 16, 17, 4, 3),  # H*W >= 256 from here: GEMM kernel gradient (C_out = 3).
    (1, 16, 16, 3, 40),
    (1, 33, 32, 3, 32),
    (2, 32, 33, 40, 32),
]


@pytest.mark.parametrize('impl', ['fast', 'subpixel', 'matmul'])
@pytest.mark.parametrize('shape', CT_SHAPES, ids=lambda s: 'x'.join(map(str, s)))
def test_conv_transpose_matches_reference(impl, shape):
  n, h, w, ci, co = shape
  x, k = _inputs((n, h, w, ci), co)
  ref = _value_and_grads(ops.conv_transpose_4x4_s2_xla, x, k)
  got = _value_and_grads(CT[impl], x, k)
  assert got[0].shape == (n, 2 * h, 2 * w, co)
  for name, g, r in zip(['y', 'dx', 'dk'], got, ref):
    assert g.shape == r.shape and g.dtype == r.dtype, name
    assert _rel_err(g, r) < 1e-5, (name, _rel_err(g, r))


# Input H, W >= 2. 'fast': (H//2)*(W//2) <= 256 takes the matmul form, else XLA's forward
# with custom gradients chosen by batch, C_in and the parity of H, W. 'fast_eigen': the same
# without per-image kernel gradients, and from N = 4 the matmul form up to 64 pixels only.
CONV_SHAPES = [
    (1, 2, 2, 5, 3),  # 1x1 output: the taps that meet the input only.
    (2, 3, 2, 5, 4),
    (2, 5, 9, 3, 7),
    (2, 7, 7, 6, 40),
    (1, 8, 8, 4, 6),
    (3, 9, 11, 8, 5),
    (1, 33, 34, 3, 5),  # 16x17 output: XLA's convolution.
    (2, 60, 62, 3, 32),  # N > 1, >= 900-pixel output, C_out >= 32: per-image kernel gradient.
    (2, 61, 60, 40, 32),  # Odd H: per-image kernel gradient, XLA's input gradient.
    (1, 34, 36, 40, 5),  # C_in >= 32, even: GEMM kernel gradient, XLA's input gradient.
    (2, 36, 34, 32, 8),  # ... and N > 1: sub-pixel input gradient.
    (2, 35, 34, 32, 6),  # Odd H, 289-pixel output: XLA's gradients.
    (4, 20, 18, 32, 8),  # 90-pixel output at N >= 4: 'fast' matmul, 'fast_eigen' XLA forward.
]


@pytest.mark.parametrize('fn', [S2['fast'], S2['fast_eigen'], S2['matmul']],
                         ids=['fast', 'fast_eigen', 'matmul'])
@pytest.mark.parametrize('shape', CONV_SHAPES, ids=lambda s: 'x'.join(map(str, s)))
def test_conv_matches_reference(fn, shape):
  n, h, w, ci, co = shape
  x, k = _inputs((n, h, w, ci), co)
  ref = _value_and_grads(ops.conv_4x4_s2_xla, x, k)
  got = _value_and_grads(fn, x, k)
  assert got[0].shape == (n, h // 2, w // 2, co)
  for name, g, r in zip(['y', 'dx', 'dk'], got, ref):
    assert g.shape == r.shape and g.dtype == r.dtype, name
    assert _rel_err(g, r) < 1e-5, (name, _rel_err(g, r))


@pytest.mark.parametrize('shape', [(1, 5, 4, 3, 6), (2, 31, 32, 3, 32), (3, 6, 9, 4, 33)],
                         ids=lambda s: 'x'.join(map(str, s)))
@pytest.mark.parametrize('impl', ['fast', 'fast_eigen', 'matmul'])
def test_conv_s1_matches_reference(shape, impl):
  n, h, w, ci, co = shape
  x, k = _inputs((n, h, w, ci), co)
  ref = _value_and_grads(ops.conv_4x4_s1_xla, x, k)
  got = _value_and_grads(S1[impl], x, k)
  assert got[0].shape == (n, h - 1, w - 1, co)
  for name, g, r in zip(['y', 'dx', 'dk'], got, ref):
    assert g.shape == r.shape and g.dtype == r.dtype, name
    assert _rel_err(g, r) < 1e-5, (name, _rel_err(g, r))


def test_reference_conv_is_pytorch_padding():
  """conv_4x4_s2_xla: output size floor((H + 2 - 4) / 2) + 1 = H // 2, as Conv2d(4, 2, 1)."""
  for h in range(2, 10):
    assert ops.conv_4x4_s2_xla(jnp.zeros((1, h, h + 1, 2)), jnp.zeros((4, 4, 2, 3))).shape == (
        1, h // 2, (h + 1) // 2, 3)


@pytest.mark.parametrize('shape', [(2, 3, 4, 8, 6), (1, 4, 6, 8, 40), (2, 30, 31, 2, 32),
                                   (2, 18, 17, 32, 8)],
                         ids=lambda s: 'x'.join(map(str, s)))
def test_bfloat16(shape):
  """bf16 in, bf16 out and gradients; close to the f32 reference on the same (rounded) values."""
  n, h, w, ci, co = shape
  x, k = _inputs((n, h, w, ci), co, jnp.bfloat16)
  ref = _value_and_grads(ops.conv_transpose_4x4_s2_xla, x.astype(jnp.float32),
                         k.astype(jnp.float32))
  for fn in [CT['fast'], CT['subpixel'], CT['matmul']]:
    got = _value_and_grads(fn, x, k)
    for name, g, r in zip(['y', 'dx', 'dk'], got, ref):
      assert g.dtype == jnp.bfloat16, name
      assert _rel_err(g, r) < 2e-2, (name, _rel_err(g, r))
  xc, kc = _inputs((n, 2 * h, 2 * w, ci), co, jnp.bfloat16)
  ref = _value_and_grads(ops.conv_4x4_s2_xla, xc.astype(jnp.float32), kc.astype(jnp.float32))
  for fn in [S2['fast'], S2['fast_eigen'], S2['matmul']]:
    got = _value_and_grads(fn, xc, kc)
    for name, g, r in zip(['y', 'dx', 'dk'], got, ref):
      assert g.dtype == jnp.bfloat16, name
      assert _rel_err(g, r) < 2e-2, (name, _rel_err(g, r))
  ref = _value_and_grads(ops.conv_4x4_s1_xla, x.astype(jnp.float32), k.astype(jnp.float32))
  for impl in ('fast', 'fast_eigen'):
    got = _value_and_grads(S1[impl], x, k)
    for name, g, r in zip(['y', 'dx', 'dk'], got, ref):
      assert g.dtype == jnp.bfloat16, name
      assert _rel_err(g, r) < 2e-2, (name, _rel_err(g, r))


def test_jax_grad_of_scalar_loss():
  """jax.grad wrt both arguments through a small conv -> conv-transpose chain."""
  x, k1 = _inputs((2, 6, 4, 3), 8)
  _, k2 = _inputs((2, 3, 2, 8), 3, seed=1)

  def loss(x, k1, k2, impl):
    h = jax.nn.relu(S2[impl](x, k1))
    return jnp.sum(jnp.sin(CT[impl](h, k2)))

  ref = jax.jit(jax.grad(loss, argnums=(0, 1, 2)), static_argnums=3)(x, k1, k2, 'xla')
  got = jax.jit(jax.grad(loss, argnums=(0, 1, 2)), static_argnums=3)(x, k1, k2, 'fast')
  for g, r in zip(got, ref):
    assert _rel_err(g, r) < 1e-5


@xla_cpu_internals
@pytest.mark.parametrize('forms,shape', [
    (CT, (1, 4, 4, 64, 48)),
    (CT, (2, 2, 3, 64, 48)),
    (S2, (1, 8, 8, 64, 48)),
    (S2, (2, 16, 12, 64, 48)),
], ids=['ct4x4', 'ct2x3', 'conv8x8', 'conv16x12'])
def test_small_maps_use_kernel_in_place(forms, shape):
  """The point of the matmul forms: no reversed or transposed kernel copy in fwd + bwd."""
  n, h, w, ci, co = shape
  x, k = _inputs((n, h, w, ci), co)

  def fwd_bwd(x, k):
    y, vjp = jax.vjp(forms['fast'], x, k)
    return vjp(y)

  def kernel_copies(fn):
    """Reversed or transposed arrays of kernel blocks: [..., C_in, C_out] or [..., C_out, C_in]."""
    hlo = jax.jit(fn).lower(x, k).compile().as_text()
    found = []
    for ln in hlo.split('\n'):
      m = re.search(r'= f32\[([\d,]+)\]\S* (reverse|transpose)\(', ln)
      if m and tuple(map(int, m.group(1).split(',')[-2:])) in {(ci, co), (co, ci)}:
        found.append(ln.strip()[:160])
    return found

  def ref_fwd_bwd(x, k):
    y, vjp = jax.vjp(forms['xla'], x, k)
    return vjp(y)

  assert kernel_copies(ref_fwd_bwd), 'the reference copies no kernel any more: re-measure'
  assert not kernel_copies(fwd_bwd)


def _slow_convolutions(fn, *args):
  """Convolutions of the compiled forward+backward that XLA:CPU runs off Eigen's fast path."""
  def fwd_bwd(x, k):
    y, vjp = jax.vjp(fn, x, k)
    return vjp(y)
  hlo = jax.jit(fwd_bwd).lower(*args).compile().as_text()
  convs = [line for line in hlo.split('\n') if ' convolution(' in line]
  return convs, [c for c in convs if 'rhs_reversal' in c or 'dim_labels=b01f_01io->b01f' not in c]


@xla_cpu_internals
def test_fast_paths_avoid_xla_cpu_slow_convolutions():
  """The point of 'fast': no swapped/non-canonical convolutions (XLA:CPU's naive loops)."""
  cases = [(ops.conv_transpose_4x4_s2_xla, (2, 1, 1, 8, 8), 'ct'),
           (ops.conv_transpose_4x4_s2_xla, (2, 2, 2, 8, 8), 'ct'),
           (ops.conv_transpose_4x4_s2_xla, (1, 8, 8, 8, 40), 'ct'),
           (ops.conv_transpose_4x4_s2_xla, (2, 32, 32, 4, 32), 'ct'),
           (ops.conv_transpose_4x4_s2_xla, (2, 16, 16, 4, 3), 'ct'),
           (ops.conv_4x4_s2_xla, (2, 2, 2, 8, 8), 'conv'),
           (ops.conv_4x4_s2_xla, (2, 4, 4, 8, 8), 'conv'),
           (ops.conv_4x4_s2_xla, (2, 16, 16, 8, 8), 'conv'),
           (ops.conv_4x4_s2_xla, (2, 3, 3, 8, 8), 'conv'),
           (ops.conv_4x4_s2_xla, (2, 64, 64, 3, 32), 'conv'),
           (ops.conv_4x4_s1_xla, (2, 32, 32, 3, 32), 's1')]
  ref_slow = 0
  for ref_fn, (n, h, w, ci, co), kind in cases:
    x, k = _inputs((n, h, w, ci), co)
    convs, slow = _slow_convolutions(ref_fn, x, k)
    assert convs, 'HLO text format not recognised'
    ref_slow += len(slow)
    fast = {'ct': CT, 'conv': S2, 's1': S1}[kind]['fast']
    _, slow = _slow_convolutions(fast, x, k)
    assert not slow, ((n, h, w, ci, co), kind, slow)
  assert ref_slow, 'XLA:CPU runs the references on the fast path now: re-measure' 


def _count(fn, *args):
  """Convolutions and dot products in ``fn``'s jaxpr (custom-VJP rules included)."""
  text = str(jax.make_jaxpr(fn)(*args))
  return text.count('conv_general_dilated['), text.count('dot_general[')


def _kernel_grad_counts(op, shape):
  n, h, w, ci, co = shape
  x, k = _inputs((n, h, w, ci), co)
  g = jnp.ones(jax.eval_shape(op, x, k).shape)
  return _count(lambda k: jax.vjp(lambda b: op(x, b), k)[1](g), k)


def test_fast_eigen_routing():
  """'fast_eigen' keeps XLA's kernel-gradient convolution where 'fast' replaces it (for
  YNNPACK): the PatchGAN's stride-1 conv (GEMM in 'fast') and narrow strided convs on large
  maps at batch > 1 (one convolution per image in 'fast'); from batch 4 a 90-pixel output
  is XLA's convolution, not the matmul form."""
  for n, impl, want in [(4, 'fast', 'dot'), (4, 'fast_eigen', 'conv'), (3, 'fast_eigen', 'dot')]:
    convs, dots = _count(S2[impl], *_inputs((n, 20, 18, 32), 8))
    assert (convs, dots) == ((0, 1) if want == 'dot' else (1, 0)), (n, impl, convs, dots)
  s1 = (2, 32, 32, 40, 32)
  assert _kernel_grad_counts(S1['fast'], s1)[1] >= 1
  assert _kernel_grad_counts(S1['fast_eigen'], s1)[1] == 0
  s2 = (3, 64, 64, 3, 32)  # 1024-pixel output, C_in < 32, C_out >= 32: per-image in 'fast'.
  per_image, _ = _kernel_grad_counts(S2['fast'], s2)
  batched, _ = _kernel_grad_counts(S2['fast_eigen'], s2)
  assert per_image >= batched + 3, (per_image, batched)  # One per image vs one for all.
