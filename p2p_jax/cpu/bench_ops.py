"""Per-layer micro-benchmark of the CPU convolution forms in ``p2p_jax.cpu.ops``.

  python -m p2p_jax.cpu.bench_ops                     # batch 1 and 4, with PyTorch
  python -m p2p_jax.cpu.bench_ops --batches=1 --reps=7 --no_torch

What it is for: deciding, layer by layer, which form of a 4x4 (transposed) convolution is
fastest on a CPU and jaxlib, when ``p2p_jax.cpu.ops``'s thresholds need revisiting. It
times forward + both gradients of every 4x4 (transposed) conv of a U-Net-256 generator and
a 70x70 PatchGAN per form, against ``torch.nn.functional.conv_transpose2d`` / ``conv2d``.
The whole train step (the real Flax networks) is timed by ``python -m p2p_jax.bench``.

Every JAX function is compiled with the CPU train step's XLA options
(``p2p_jax.convolution.step_plan``), so the rows describe what the step runs (standalone;
inside the step large maps can behave differently). Timings are interleaved (one call of
each contender per round, ``--reps`` rounds) and reported as medians. Torch is optional
(``--no_torch``, or automatically when it is not installed). Prints markdown tables.
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from typing import Callable, Dict, List, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from p2p_jax import convolution
from p2p_jax.cpu import ops

# (H = W of the input, C_in, C_out) at batch 1 for U-Net-256 (ngf 64, 3 -> 3 channels).
DECODER_SHAPES = [(1, 512, 512), (2, 1024, 512), (4, 1024, 512), (8, 1024, 512),
                  (16, 1024, 256), (32, 512, 128), (64, 256, 64), (128, 128, 3)]
ENCODER_SHAPES = [(256, 3, 64), (128, 64, 128), (64, 128, 256), (32, 256, 512),
                  (16, 512, 512), (8, 512, 512), (4, 512, 512), (2, 512, 512)]
PATCHGAN_SHAPES = [(256, 6, 64), (128, 64, 128), (64, 128, 256)]
PATCHGAN_S1_SHAPES = [(32, 256, 512), (31, 512, 1)]
# The forms of each op, by name.
FORMS = {
    'conv_transpose': {'xla': ops.conv_transpose_4x4_s2_xla,
                       'fast': ops.conv_transpose_4x4_s2_fast,
                       'subpixel': ops.conv_transpose_4x4_s2_subpixel,
                       'matmul': ops.conv_transpose_4x4_s2_matmul},
    'conv': {'xla': ops.conv_4x4_s2_xla, 'fast': ops.conv_4x4_s2_fast,
             'fast_eigen': ops.conv_4x4_s2_fast_eigen, 'matmul': ops.conv_4x4_s2_matmul},
    'conv_s1': {'xla': ops.conv_4x4_s1_xla, 'fast': ops.conv_4x4_s1_fast,
                'fast_eigen': ops.conv_4x4_s1_fast_eigen, 'matmul': ops.conv_4x4_s1_matmul},
}


def _interleaved(fns: Dict[str, Callable[[], object]], reps: int, warmup: int = 1,
                 stat=np.median) -> Dict[str, float]:
  """Median (or ``stat``) seconds per call of each fn, timed round-robin."""
  for f in fns.values():
    for _ in range(warmup):
      f()
  times: Dict[str, List[float]] = {k: [] for k in fns}
  for _ in range(reps):
    for k, f in fns.items():
      t0 = time.perf_counter()
      f()
      times[k].append(time.perf_counter() - t0)
  return {k: float(stat(v)) for k, v in times.items()}


def _compiled(jitted, args, compiler_options: dict | None):
  """The jitted function compiled for ``args`` with XLA ``compiler_options`` (None:
  defaults)."""
  return jitted.lower(*args).compile(compiler_options=compiler_options)


def _torch_or_none(enabled: bool):
  if not enabled:
    return None
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    return None
  return torch


# ----------------------------------------------------------------------------------------
# Per layer.
# ----------------------------------------------------------------------------------------


def bench_layers(kind: str, batch: int, impls: Sequence[str], reps: int, use_torch: bool,
                 dtype=jnp.float32, compiler_options: dict | None = None,
                 shapes: Sequence[Tuple[int, int, int]] | None = None) -> List[dict]:
  """kind: 'conv_transpose' (decoder shapes), 'conv' (stride 2: encoder + PatchGAN shapes)
  or 'conv_s1' (the PatchGAN's stride-1 layers); ``impls`` are names in ``FORMS[kind]``;
  ``shapes`` replaces the default (H, C_in, C_out) list."""
  torch = _torch_or_none(use_torch)
  rng = np.random.default_rng(0)
  stride = 1 if kind == 'conv_s1' else 2
  if kind == 'conv_transpose':
    default, out_hw = DECODER_SHAPES, lambda h: 2 * h
  elif kind == 'conv':
    default, out_hw = ENCODER_SHAPES + PATCHGAN_SHAPES, lambda h: h // 2
  else:
    default, out_hw = PATCHGAN_S1_SHAPES, lambda h: h - 1
  shapes = default if shapes is None else shapes
  rows = []
  for h, ci, co in shapes:
    x = rng.standard_normal((batch, h, h, ci)).astype(np.float32)
    k = (0.02 * rng.standard_normal((4, 4, ci, co))).astype(np.float32)
    ct = rng.standard_normal((batch, out_hw(h), out_hw(h), co)).astype(np.float32)
    jx, jk, jct = (jnp.asarray(a, dtype) for a in (x, k, ct))
    fns = {}
    for impl in impls:
      fb = lambda x, k, ct, op=FORMS[kind][impl]: jax.vjp(op, x, k)[1](ct)
      f = _compiled(jax.jit(fb), (jx, jk, jct), compiler_options)
      fns[impl] = functools.partial(lambda f: jax.block_until_ready(f(jx, jk, jct)), f)
    if torch is not None:
      tx = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
      tct = torch.tensor(ct.transpose(0, 3, 1, 2).copy())
      if kind == 'conv_transpose':  # torch weight: [C_in, C_out, kh, kw]
        tk = torch.tensor(k.transpose(2, 3, 0, 1).copy(), requires_grad=True)
        tf = lambda a, b: torch.nn.functional.conv_transpose2d(a, b, stride=2, padding=1)
      else:  # torch weight: [C_out, C_in, kh, kw]
        tk = torch.tensor(k.transpose(3, 2, 0, 1).copy(), requires_grad=True)
        tf = lambda a, b: torch.nn.functional.conv2d(a, b, stride=stride, padding=1)

      def torch_fb(tf=tf, tx=tx, tk=tk, tct=tct):
        tx.grad = tk.grad = None
        tf(tx, tk).backward(tct)

      fns['torch'] = torch_fb
    med = _interleaved(fns, reps)
    rows.append(dict(shape=(batch, h, h, ci, co), **med))
    print('  ', kind, rows[-1], flush=True)
  return rows


# ----------------------------------------------------------------------------------------
# Report.
# ----------------------------------------------------------------------------------------


def _layer_table(kind: str, rows: List[dict], impls: Sequence[str]) -> str:
  cols = list(impls) + (['torch'] if 'torch' in rows[0] else [])
  ref = 'xla' if 'xla' in impls else None
  head = '| N,H,W,Cin,Cout | ' + ' | '.join(f'{c} ms' for c in cols)
  extra = []
  if ref and 'fast' in impls:
    extra.append('fast/xla')
  if 'fast' in impls and 'torch' in cols:
    extra.append('fast/torch')
  head += ''.join(f' | {e}' for e in extra) + ' |'
  lines = [f'{kind} (forward + grads wrt input and kernel), medians:', '', head,
           '|' + '---|' * (1 + len(cols) + len(extra))]
  totals = {c: 0.0 for c in cols}
  for r in rows:
    cells = [f'{r[c] * 1e3:.1f}' for c in cols]
    for c in cols:
      totals[c] += r[c]
    for e in extra:
      num, den = e.split('/')
      cells.append(f'{r[num] / r[den]:.2f}')
    lines.append(f"| {','.join(map(str, r['shape']))} | " + ' | '.join(cells) + ' |')
  cells = [f'{totals[c] * 1e3:.1f}' for c in cols]
  for e in extra:
    num, den = e.split('/')
    cells.append(f'{totals[num] / totals[den]:.2f}')
  lines.append('| **sum** | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batches', default='1,4')
  parser.add_argument('--reps', type=int, default=5)
  parser.add_argument('--ct_impls', default='xla,fast,subpixel')
  parser.add_argument('--conv_impls', default='xla,fast,fast_eigen')
  parser.add_argument('--dtype', default='float32', help='JAX compute dtype (torch: float32)')
  parser.add_argument('--no_torch', action='store_true')
  parser.add_argument('--single_thread', action='store_true',
                      help='one thread for XLA and torch: a per-core comparison that is less '
                           'sensitive to other load on the machine than the default threading')
  args = parser.parse_args(argv)
  if args.single_thread:  # Before the first JAX computation creates the CPU client.
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                               ' --xla_cpu_multi_thread_eigen=false'
                               ' intra_op_parallelism_threads=1')
    torch = _torch_or_none(not args.no_torch)
    if torch is not None:
      torch.set_num_threads(1)
  dtype = jnp.dtype(args.dtype)
  plan = convolution.step_plan('cpu')
  print(f'# jax {jax.__version__} on {jax.default_backend()}, {jax.devices()[0].device_kind}; '
        f'dtype {dtype.name}; reps {args.reps}; step plan {plan.forms}'
        f"{'; single thread' if args.single_thread else ''}", flush=True)
  report = []
  use_torch = not args.no_torch
  for batch in [int(b) for b in args.batches.split(',')]:
    ct_impls = args.ct_impls.split(',')
    rows = bench_layers('conv_transpose', batch, ct_impls, args.reps, use_torch, dtype,
                        plan.compiler_options)
    report.append(_layer_table(f'conv_transpose_4x4_s2, batch {batch}', rows, ct_impls))
    conv_impls = args.conv_impls.split(',')
    for kind, title in (('conv', 'conv_4x4_s2'), ('conv_s1', 'conv_4x4_s1 (PatchGAN)')):
      rows = bench_layers(kind, batch, conv_impls, args.reps, use_torch, dtype,
                          plan.compiler_options)
      report.append(_layer_table(f'{title}, batch {batch}', rows, conv_impls))
  print('\n\n'.join(report))


if __name__ == '__main__':
  main()
