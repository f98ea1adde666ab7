"""Micro-benchmark of the 4x4 stride-2 (transposed) convolution implementations in ``ops``.

  python -m p2p_jax.bench_ops                       # layers + whole network, batch 1 and 4
  python -m p2p_jax.bench_ops --parts=layers --batches=1 --reps=7
  python -m p2p_jax.bench_ops --parts=net --net_impls=fast/fast,xla/xla --no_torch

Times forward + backward (the gradients wrt input and kernel, or wrt all parameters) of

* ``layers``: every 4x4 (transposed) conv of a U-Net-256 generator and a 70x70 PatchGAN
  (decoder: ``conv_transpose_4x4_s2``; encoder and PatchGAN: ``conv_4x4_s2``; PatchGAN's
  last two layers: ``conv_4x4_s1``), per implementation, against
  ``torch.nn.functional.conv_transpose2d`` / ``conv2d``;
* ``net``: a U-Net-256 + 70x70 PatchGAN forward + backward (loss ``mean(D([x, G(x)])) +
  L1(G(x), y)``, gradients wrt all parameters of both, batch-norm with batch statistics, no
  dropout) in plain JAX with the chosen ``(conv_transpose impl, conv impl)`` pairs,
  against the same networks in PyTorch (``p2p_jax.torch_reference``).

Every JAX function is compiled with the train step's XLA options (``--cpu_convolutions``,
default ``auto``: Eigen convolutions on CPU where ``p2p_jax.xla_options`` applies them), so
the ``fast_eigen`` rows describe what the step runs (standalone: inside the step, large
maps have behaved differently, ``docs/perf_notes.md``). Timings are interleaved (one call
of each contender per round, ``--reps`` rounds) and reported as medians, so the ratios
stay meaningful on a shared, noisy machine. Torch is
optional (``--no_torch``, or automatically when it is not installed) and runs with its
default thread count. Prints markdown tables (used in ``docs/perf_notes.md``).
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
from jax import lax

from p2p_jax import ops, xla_options

# (H = W of the input, C_in, C_out) at batch 1 for U-Net-256 (ngf 64, 3 -> 3 channels).
DECODER_SHAPES = [(1, 512, 512), (2, 1024, 512), (4, 1024, 512), (8, 1024, 512),
                  (16, 1024, 256), (32, 512, 128), (64, 256, 64), (128, 128, 3)]
ENCODER_SHAPES = [(256, 3, 64), (128, 64, 128), (64, 128, 256), (32, 256, 512),
                  (16, 512, 512), (8, 512, 512), (4, 512, 512), (2, 512, 512)]
PATCHGAN_SHAPES = [(256, 6, 64), (128, 64, 128), (64, 128, 256)]
PATCHGAN_S1_SHAPES = [(32, 256, 512), (31, 512, 1)]
_LAST_TIMES: Dict[str, List[float]] = {}


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
  _LAST_TIMES.clear()
  _LAST_TIMES.update(times)
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
  or 'conv_s1' (the PatchGAN's stride-1 layers); ``shapes`` replaces those (H, C_in, C_out)."""
  torch = _torch_or_none(use_torch)
  rng = np.random.default_rng(0)
  stride = 1 if kind == 'conv_s1' else 2
  if kind == 'conv_transpose':
    default, op, out_hw = DECODER_SHAPES, ops.conv_transpose_4x4_s2, lambda h: 2 * h
  elif kind == 'conv':
    default, op, out_hw = ENCODER_SHAPES + PATCHGAN_SHAPES, ops.conv_4x4_s2, lambda h: h // 2
  else:
    default, op, out_hw = PATCHGAN_S1_SHAPES, ops.conv_4x4_s1, lambda h: h - 1
  shapes = default if shapes is None else shapes
  rows = []
  for h, ci, co in shapes:
    x = rng.standard_normal((batch, h, h, ci)).astype(np.float32)
    k = (0.02 * rng.standard_normal((4, 4, ci, co))).astype(np.float32)
    ct = rng.standard_normal((batch, out_hw(h), out_hw(h), co)).astype(np.float32)
    jx, jk, jct = (jnp.asarray(a, dtype) for a in (x, k, ct))
    fns = {}
    for impl in impls:
      fb = lambda x, k, ct, impl=impl: jax.vjp(lambda a, b: op(a, b, impl), x, k)[1](ct)
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
# Whole network: U-Net-256 generator + 70x70 PatchGAN, plain JAX.
# ----------------------------------------------------------------------------------------


def _unet_levels(input_nc: int, output_nc: int, num_downs: int, ngf: int):
  """(input_nc, inner_nc, outer_nc) per level, outermost first."""
  levels = [(input_nc, ngf, output_nc), (ngf, 2 * ngf, ngf), (2 * ngf, 4 * ngf, 2 * ngf),
            (4 * ngf, 8 * ngf, 4 * ngf)]
  levels += [(8 * ngf, 8 * ngf, 8 * ngf)] * (num_downs - 4)
  return levels


def init_nets(key, input_nc=3, output_nc=3, num_downs=8, ngf=64, ndf=64):
  """Parameters of the benchmark U-Net (batch norm) and 70x70 PatchGAN, N(0, 0.02) kernels."""
  levels = _unet_levels(input_nc, output_nc, num_downs, ngf)
  keys = iter(jax.random.split(key, 64))
  normal = lambda shape: 0.02 * jax.random.normal(next(keys), shape)
  g = []
  for i, (cin, inner, outer) in enumerate(levels):
    innermost = i == len(levels) - 1
    up_in = inner if innermost else 2 * inner
    p = {'down': normal((4, 4, cin, inner)), 'up': normal((4, 4, up_in, outer))}
    if 0 < i < len(levels) - 1:
      p['down_bn'] = (jnp.ones(inner), jnp.zeros(inner))
    if i > 0:
      p['up_bn'] = (jnp.ones(outer), jnp.zeros(outer))
    else:
      p['up_bias'] = jnp.zeros(outer)
    g.append(p)
  chans = [input_nc + output_nc, ndf, 2 * ndf, 4 * ndf, 8 * ndf, 1]
  d = [{'k': normal((4, 4, a, b))} for a, b in zip(chans[:-1], chans[1:])]
  d[0]['b'] = jnp.zeros(ndf)
  d[-1]['b'] = jnp.zeros(1)
  for p, c in zip(d[1:4], chans[2:5]):
    p['bn'] = (jnp.ones(c), jnp.zeros(c))
  return g, d


def _bn(x, scale_bias):
  mean = x.mean((0, 1, 2))
  var = jnp.square(x - mean).mean((0, 1, 2))
  return (x - mean) * lax.rsqrt(var + 1e-5) * scale_bias[0] + scale_bias[1]


def unet_apply(g, x, ct_impl: str, conv_impl: str):
  def level(i, h_in):
    p = g[i]
    innermost = i == len(g) - 1
    h = h_in if i == 0 else jax.nn.leaky_relu(h_in, 0.2)
    h = ops.conv_4x4_s2(h, p['down'], conv_impl)
    if 'down_bn' in p:
      h = _bn(h, p['down_bn'])
    if not innermost:
      h = level(i + 1, h)
    h = ops.conv_transpose_4x4_s2(jax.nn.relu(h), p['up'], ct_impl)
    if i == 0:
      return jnp.tanh(h + p['up_bias'])
    return jnp.concatenate([h_in, _bn(h, p['up_bn'])], axis=-1)
  return level(0, x)


def patchgan_apply(d, x, conv_impl: str):
  h = x
  for i, p in enumerate(d):
    if i < 3:
      h = ops.conv_4x4_s2(h, p['k'], conv_impl)
    else:
      h = ops.conv_4x4_s1(h, p['k'], conv_impl)
    if 'b' in p:
      h = h + p['b']
    if 'bn' in p:
      h = _bn(h, p['bn'])
    if i < len(d) - 1:
      h = jax.nn.leaky_relu(h, 0.2)
  return h


def make_net_fwd_bwd(ct_impl: str, conv_impl: str, dtype=jnp.float32):
  """jit(value_and_grad) of mean(D([x, G(x)])) + L1(G(x), y) wrt (G params, D params)."""
  def loss(params, x, y):
    g, d = jax.tree.map(lambda p: p.astype(dtype), params)
    fake = unet_apply(g, x.astype(dtype), ct_impl, conv_impl)
    pred = patchgan_apply(d, jnp.concatenate([x.astype(dtype), fake], -1), conv_impl)
    return (pred.astype(jnp.float32).mean()
            + jnp.abs(fake.astype(jnp.float32) - y).mean())
  return jax.jit(jax.value_and_grad(loss))


def bench_net(batch: int, pairs: Sequence[Tuple[str, str]], reps: int, use_torch: bool,
              size: int = 256, num_downs: int = 8, dtype=jnp.float32,
              compiler_options: dict | None = None) -> dict:
  torch = _torch_or_none(use_torch)
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
  y = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
  params = init_nets(jax.random.PRNGKey(0), num_downs=num_downs)
  jx, jy = jnp.asarray(x), jnp.asarray(y)
  fns = {}
  for ct_impl, conv_impl in pairs:
    f = _compiled(make_net_fwd_bwd(ct_impl, conv_impl, dtype), (params, jx, jy),
                  compiler_options)
    fns[f'{ct_impl}/{conv_impl}'] = functools.partial(
        lambda f: jax.block_until_ready(f(params, jx, jy)), f)
  if torch is not None:
    from p2p_jax import torch_reference as tr  # pylint: disable=import-outside-toplevel
    torch.manual_seed(0)
    tg = tr.UnetGenerator(3, 3, num_downs, 64, use_dropout=False).train()
    td = tr.NLayerDiscriminator(6, 64, 3).train()
    tx, ty = tr.nhwc_to_torch(x), tr.nhwc_to_torch(y)

    def torch_fb():
      for p in list(tg.parameters()) + list(td.parameters()):
        p.grad = None
      fake = tg(tx)
      loss = td(torch.cat([tx, fake], 1)).mean() + (fake - ty).abs().mean()
      loss.backward()

    fns['torch'] = torch_fb
  med = _interleaved(fns, reps)
  mins = {k: float(np.min(v)) for k, v in _LAST_TIMES.items()}
  print('   net', batch, 'median', med, 'min', mins, flush=True)
  return med, mins


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
  parser.add_argument('--parts', default='layers,net', help='comma list: layers, net')
  parser.add_argument('--batches', default='1,4')
  parser.add_argument('--reps', type=int, default=5)
  parser.add_argument('--ct_impls', default='xla,fast,subpixel')
  parser.add_argument('--conv_impls', default='xla,fast,fast_eigen')
  parser.add_argument('--net_impls',
                      default='xla/xla,fast/xla,fast/fast,subpixel/fast,fast/fast_eigen',
                      help='comma list of conv_transpose_impl/conv_impl pairs')
  parser.add_argument('--dtype', default='float32', help='JAX compute dtype (torch: float32)')
  parser.add_argument('--no_torch', action='store_true')
  parser.add_argument('--cpu_convolutions', default='auto', choices=xla_options.CHOICES,
                      help="the train step's option (p2p_jax.xla_options): which library "
                           'runs XLA:CPU convolutions')
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
  parts = args.parts.split(',')
  dtype = jnp.dtype(args.dtype)
  convolutions, options = xla_options.train_step_options(args.cpu_convolutions)
  print(f'# jax {jax.__version__} on {jax.default_backend()}, {jax.devices()[0].device_kind}; '
        f'dtype {dtype.name}; reps {args.reps}; convolutions {convolutions}'
        f"{'; single thread' if args.single_thread else ''}", flush=True)
  report = []
  for batch in [int(b) for b in args.batches.split(',')]:
    if 'layers' in parts:
      ct_impls = args.ct_impls.split(',')
      rows = bench_layers('conv_transpose', batch, ct_impls, args.reps, not args.no_torch, dtype,
                          options)
      report.append(_layer_table(f'conv_transpose_4x4_s2, batch {batch}', rows, ct_impls))
      conv_impls = args.conv_impls.split(',')
      rows = bench_layers('conv', batch, conv_impls, args.reps, not args.no_torch, dtype,
                          options)
      report.append(_layer_table(f'conv_4x4_s2, batch {batch}', rows, conv_impls))
      rows = bench_layers('conv_s1', batch, conv_impls, args.reps, not args.no_torch, dtype,
                          options)
      report.append(_layer_table(f'conv_4x4_s1 (PatchGAN), batch {batch}', rows, conv_impls))
    if 'net' in parts:
      pairs = [tuple(p.split('/')) for p in args.net_impls.split(',')]
      med, mins = bench_net(batch, pairs, args.reps, not args.no_torch, dtype=dtype,
                            compiler_options=options)
      lines = [f'U-Net-256 + 70x70 PatchGAN forward + backward, batch {batch}:', '',
               '| ct_impl/conv_impl | median ms | min ms | vs xla/xla | vs torch (median) |',
               '|---|---|---|---|---|']
      for name, t in med.items():
        vs_ref = f"{t / med['xla/xla']:.3f}" if 'xla/xla' in med else '-'
        vs_torch = f"{t / med['torch']:.2f}" if 'torch' in med else '-'
        lines.append(f'| {name} | {t * 1e3:.0f} | {mins[name] * 1e3:.0f} | {vs_ref} | {vs_torch} |')
      report.append('\n'.join(lines))
  print('\n\n'.join(report))


if __name__ == '__main__':
  main()
