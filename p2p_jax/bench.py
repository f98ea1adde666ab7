"""Benchmark of the real train step (D and G updates), optionally side by side with PyTorch.

  python -m p2p_jax.bench --config=configs/facades.py --config.batch_size=4 \\
      --steps=10 --warmup=3 [--torch] [--rounds=3] [--what=train|pipeline]

Any model (``config.model.name``: pix2pix, CycleGAN, e.g.
``--config=configs/cyclegan_horse2zebra.py``). Prints one JSON line per measurement.
``--what=train`` times the configured model's jitted, mapped step
(``p2p_jax.parallel.DataParallel``, all local devices, donated state) on a synthetic
device-resident batch (no dataset needed); ``--torch`` also times the PyTorch reference
implementation of the same networks, losses, optimisers and step order
(``p2p_jax.torch_reference``, picked per model in ``BENCH_MODELS``; torch is optional) in
a process of its own, alternating rounds of the two so that machine load affects both alike, and prints
their ratio (of the medians) with the ratio within each round (``round_ratios``) and its
range. Run as ``python -m`` on a CPU-only machine, the bench restarts itself with tcmalloc
preloaded where installed (``p2p_jax.cpu.allocator``; ``P2P_JAX_TCMALLOC=0`` keeps glibc's
malloc); the PyTorch process inherits the same allocator, and every line's ``malloc`` says
which ran. ``convolutions`` says how the step computes its convolutions
(``p2p_jax.convolution``; ``P2P_JAX_CPU_CONV=fast|xla`` overrides it for A/B runs).
``host_cpu_util`` is the process's CPU seconds per wall-clock second while an
implementation ran (2.0: two cores busy throughout); on CPU it shows how much of the machine
each one keeps busy; ``host_cpu`` names the host's CPU model. ``--what=pipeline`` times the
tf.data input pipeline alone.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from p2p_jax import cyclegan, gan
from p2p_jax.cpu import allocator
from p2p_jax.parallel import DataParallel

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py).', lock_config=True)
flags.DEFINE_integer('steps', 10, 'Timed train steps per round.')
flags.DEFINE_integer('warmup', 3, 'Untimed steps before timing (after compilation).')
flags.DEFINE_integer('rounds', 1, 'Alternating rounds (p2p_jax, torch, p2p_jax, ...).')
flags.DEFINE_bool('torch', False, 'Also time the PyTorch reference, side by side.')
flags.DEFINE_enum('what', 'train', ['train', 'pipeline', 'loop'], 'What to time.')
flags.DEFINE_integer('channels', 3, 'Input and output channels (train benchmark).')

# Dense peak FLOP/s per device, by compute dtype, where known (vendor datasheets, SXM).
PEAK_FLOPS = {
    'H100': {'bfloat16': 989e12, 'float32': 67e12},
    'H200': {'bfloat16': 989e12, 'float32': 67e12},
    'A100': {'bfloat16': 312e12, 'float32': 19.5e12},
    'TPU v4': {'bfloat16': 275e12},
    'TPU v5e': {'bfloat16': 197e12},
}


def peak_flops(device, dtype: str) -> float | None:
  kind = getattr(device, 'device_kind', '')
  for name, peaks in PEAK_FLOPS.items():
    if name.lower() in kind.lower():
      return peaks.get(dtype)
  return None


def _flops(compiled) -> float | None:
  try:
    cost = compiled.cost_analysis()
  except Exception:  # Not every backend reports it.
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  return float(cost['flops']) if cost and 'flops' in cost else None


def _peak_memory(device) -> int | None:
  try:
    stats = device.memory_stats()
  except Exception:
    return None
  return int(stats['peak_bytes_in_use']) if stats and 'peak_bytes_in_use' in stats else None


def _torch_pix2pix_step(tr, config, channels: int, device: str) -> Callable[..., Any]:
  """The reference pix2pix step (U-Net, PatchGAN on (input, image) pairs; D then G)."""
  m = config.model
  g = tr.UnetGenerator(channels, channels, m.num_downs, m.ngf, norm=m.g_norm,
                       use_dropout=m.dropout > 0).to(device)
  d = tr.NLayerDiscriminator(2 * channels, m.ndf, m.n_layers, norm=m.d_norm).to(device)
  return tr.make_torch_step(g, d, config.loss.lambda_l1, config.optim.lr,
                            (config.optim.b1, config.optim.b2))


def _torch_cyclegan_step(tr, config, channels: int, device: str) -> Callable[..., Any]:
  """The reference CycleGAN step: ResNet generators, instance-norm PatchGANs, LSGAN; G_A
  and G_B updated, then D_A and D_B on the fakes from before that update, through image
  pools of ``loss.pool_size`` (50), as ``p2p_jax.cyclegan.train_step``."""
  m, loss = config.model, config.loss
  if loss.gan_mode != 'lsgan':
    raise ValueError(f"the PyTorch CycleGAN step is LSGAN only; got loss.gan_mode "
                     f"{loss.gan_mode!r} (use --config.loss.gan_mode=lsgan).")
  blocks = cyclegan.resnet_blocks(m.generator)
  g_a, g_b = (tr.ResnetGenerator(channels, channels, m.ngf, blocks, norm=m.g_norm).to(device)
              for _ in range(2))
  d_a, d_b = (tr.NLayerDiscriminator(channels, m.ndf, m.n_layers, norm=m.d_norm).to(device)
              for _ in range(2))
  return tr.make_torch_cyclegan_step(
      g_a, g_b, d_a, d_b, loss.lambda_a, loss.lambda_b, loss.lambda_identity,
      config.optim.lr, (config.optim.b1, config.optim.b2), pool_size=loss.pool_size)


@dataclasses.dataclass(frozen=True)
class BenchModel:
  """What the bench needs of a model beyond ``p2p_jax.gan``'s interface."""

  batch_keys: tuple[str, str]  # The train batch's keys: the input side's, the output side's.
  net_fields: tuple[str, ...]  # ``config.model`` fields every JSON line reports.
  # (p2p_jax.torch_reference, config, channels, torch device) -> step(real_a, real_b),
  # the PyTorch reference step of the same networks (NCHW tensors).
  torch_step: Callable[..., Callable[..., Any]]


BENCH_MODELS = {
    'pix2pix': BenchModel(('input', 'target'), ('generator', 'num_downs', 'ngf', 'ndf'),
                          _torch_pix2pix_step),
    'cyclegan': BenchModel(('A', 'B'), ('generator', 'ngf', 'ndf'), _torch_cyclegan_step),
}


def bench_model(config) -> BenchModel:
  """The ``BENCH_MODELS`` entry of ``config.model.name``."""
  return BENCH_MODELS[gan.model_name(config)]


class JaxStep:
  """The configured model's mapped train step on a fixed device-resident batch.

  Built as training builds it (``DataParallel.from_config``, ``model.init_state`` with one
  entry per device of the per-device fields, e.g. CycleGAN's image pools); the lr schedule
  is the config's with one-step epochs (its work per step is the same at any lr)."""

  def __init__(self, config, channels: int = 3):
    s, b, k = config.image_size, config.batch_size, config.steps_per_dispatch
    self.config = config
    self.devices = jax.local_devices()
    model = gan.get_model(config)
    data = gan.DataInfo(channels, channels)
    self.dp = DataParallel.from_config(config, data, devices=self.devices)
    self.convolutions = self.dp.conv_plan.forms
    state = model.init_state(self.dp.nets, config, data, config.seed, len(self.devices))
    self.state = self.dp.put_state(state)
    rng = np.random.default_rng(0)
    shape = ((k,) if k > 1 else ()) + (b, s, s, channels)
    batch = {key: rng.uniform(-1, 1, shape).astype(np.float32)
             for key in bench_model(config).batch_keys}
    self.batch = self.dp.put_batch(batch)
    t = time.perf_counter()
    compiled = self.dp.lower(self.state, self.batch).compile()
    self.compile_s = time.perf_counter() - t
    per_device = _flops(compiled)
    # XLA reports the cost of one device's program for one dispatch of k steps.
    self.flops_per_step = (per_device * len(self.devices) / k) if per_device else None
    self.steps_per_dispatch = k

  def run(self, steps: int) -> tuple[float, list[float]]:
    """Returns (seconds for ``steps`` steps dispatched back to back, per-dispatch seconds)."""
    k = self.steps_per_dispatch
    n = max(1, steps // k)
    t0 = time.perf_counter()
    for _ in range(n):
      self.state, m = self.dp.step(self.state, self.batch)
    jax.block_until_ready((self.state, m))
    total = time.perf_counter() - t0
    per = []
    for _ in range(n):
      t = time.perf_counter()
      self.state, m = self.dp.step(self.state, self.batch)
      jax.block_until_ready(m)
      per.append((time.perf_counter() - t) / k)
    return total / (n * k), per


class TorchStep:
  """The PyTorch reference step of the configured model (``BENCH_MODELS``) on the same
  shapes (CPU, or CUDA when available)."""

  def __init__(self, config, channels: int = 3):
    import torch

    from p2p_jax import torch_reference as tr
    self.torch = torch
    self.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    torch.manual_seed(config.seed)
    self.step = bench_model(config).torch_step(tr, config, channels, self.device)
    rng = np.random.default_rng(0)
    shape = (config.batch_size, config.image_size, config.image_size, channels)
    self.batch = [tr.nhwc_to_torch(rng.uniform(-1, 1, shape)).to(self.device)
                  for _ in range(2)]

  def run(self, steps: int) -> tuple[float, list[float]]:
    per = []
    t0 = time.perf_counter()
    for _ in range(steps):
      t = time.perf_counter()
      self.step(*self.batch)  # Returns Python floats: synchronises.
      per.append(time.perf_counter() - t)
    return (time.perf_counter() - t0) / steps, per


def _torch_worker(conn, config_dict: dict, channels: int, warmup: int) -> None:
  """Child process: builds a TorchStep, then runs ``steps`` on request and sends back
  (seconds per step, per-step seconds, CPU seconds, wall seconds)."""
  import ml_collections
  try:
    th = TorchStep(ml_collections.ConfigDict(config_dict), channels)
    th.run(warmup)
  except Exception as e:  # pylint: disable=broad-except  # Reported by the parent.
    conn.send(('error', f'{type(e).__name__}: {e}'))
    return
  conn.send(('ready', th.device, th.torch.__version__, th.torch.get_num_threads(),
             allocator.active_malloc()))
  while (steps := conn.recv()) is not None:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    sec, per = th.run(steps)
    conn.send((sec, per, time.process_time() - cpu0, time.perf_counter() - wall0))


class TorchProcess:
  """``TorchStep`` in its own (spawned) process, so that the two implementations do not
  share one (side by side in one process each runs slower than alone, and not by the same
  amount)."""

  def __init__(self, config, channels: int = 3, warmup: int = 1):
    import multiprocessing
    ctx = multiprocessing.get_context('spawn')  # No fork of a process running XLA threads.
    self._conn, child = ctx.Pipe()
    self._proc = ctx.Process(target=_torch_worker, daemon=True,
                             args=(child, config.to_dict(), channels, warmup))
    self._proc.start()
    child.close()
    msg = self._conn.recv()
    if msg[0] == 'error':
      self._proc.join()
      raise RuntimeError(f'PyTorch reference step failed: {msg[1]}')
    _, self.device, self.version, self.threads, self.malloc = msg

  def run(self, steps: int) -> tuple[float, list[float], float, float]:
    """(seconds per step, per-step seconds, CPU seconds, wall seconds) of ``steps`` steps."""
    self._conn.send(steps)
    return self._conn.recv()

  def close(self) -> None:
    self._conn.send(None)
    self._proc.join(timeout=60)


def host_cpu(cpuinfo_path: str = '/proc/cpuinfo') -> str:
  """The host CPU as 'model (N cores, widest x86 SIMD[, amx][, family F model M])', e.g.
  'AMD EPYC (2 cores, avx2, family 25 model 1)'; 'amx' marks Intel's matrix units
  (Sapphire Rapids and later; bf16/int8 only). The family and model numbers tell apart
  generations that a VM's model name hides ('AMD EPYC': family 25 is Zen 3 or 4, 26 Zen 5).

  CPU figures differ by machine type as much as by code (``docs/performance.md``), so every
  bench line names the host, not just the JAX device ('cpu')."""
  fields: dict[str, str] = {}
  try:
    with open(cpuinfo_path) as f:
      for line in f:
        key, _, value = line.partition(':')
        key = key.strip()
        if key in ('model name', 'flags', 'cpu family', 'model') and key not in fields:
          fields[key] = value.strip()
        if not line.strip() and fields:  # The first processor's block is enough.
          break
  except OSError:
    pass
  model = fields.get('model name') or platform.processor() or platform.machine() or 'unknown'
  flags_ = set(fields.get('flags', '').split())
  simd = next((s for s in ('avx512f', 'avx2', 'avx') if s in flags_), None)
  details = ([f'{os.cpu_count()} cores'] + ([simd] if simd else [])
             + (['amx'] if 'amx_tile' in flags_ else []))
  if fields.get('cpu family') and fields.get('model'):
    details.append(f'family {fields["cpu family"]} model {fields["model"]}')
  return f'{model} ({", ".join(details)})'


def _common(config) -> dict:
  dev = jax.local_devices()[0]
  nets = {f: config.model[f] for f in bench_model(config).net_fields}
  return {'date': datetime.date.today().isoformat(), 'host_cpu': host_cpu(),
          'model': gan.model_name(config), 'batch_size': config.batch_size,
          'image_size': config.image_size, 'dtype': config.dtype, **nets,
          'device': getattr(dev, 'device_kind', str(dev)),
          'platform': dev.platform, 'num_devices': len(jax.local_devices()),
          'jax_version': jax.__version__, 'malloc': allocator.active_malloc()}


# Pause before each timed segment of a side-by-side run: a thread pool keeps spinning for
# a while after its last task (OpenMP, Eigen), and the segment that follows would share
# the cores with it. Rounds also alternate which implementation goes first.
SETTLE_S = 0.5


def bench_train(config, steps: int, warmup: int, rounds: int, with_torch: bool,
                channels: int = 3) -> list[dict]:
  jx = JaxStep(config, channels)
  jx.run(warmup)
  th = TorchProcess(config, channels, warmup) if with_torch else None

  def run_jax(steps):
    cpu0, wall0 = time.process_time(), time.perf_counter()
    sec, per = jx.run(steps)
    return sec, per, time.process_time() - cpu0, time.perf_counter() - wall0

  results = {'p2p_jax': [], 'torch': []}
  per_step = {'p2p_jax': [], 'torch': []}
  cpu_wall = {'p2p_jax': [0.0, 0.0], 'torch': [0.0, 0.0]}
  order = [('p2p_jax', run_jax)] + ([('torch', th.run)] if th else [])
  try:
    for r in range(rounds):
      for name, run in (order if r % 2 == 0 else order[::-1]):
        if th is not None:
          time.sleep(SETTLE_S)  # Let the other implementation's worker threads go idle.
        sec, per, cpu, wall = run(steps)
        cpu_wall[name][0] += cpu
        cpu_wall[name][1] += wall
        results[name].append(sec)
        per_step[name] += per
  finally:
    if th is not None:
      th.close()
  lines = []
  base = _common(config)
  dev = jax.local_devices()[0]
  peak = peak_flops(dev, config.dtype)
  for name in ('p2p_jax', 'torch'):
    if not results[name]:
      continue
    sec = statistics.median(results[name])
    line = dict(base, impl=name, images_per_sec=config.batch_size / sec,
                step_ms=1e3 * statistics.median(per_step[name]),
                step_ms_pipelined=1e3 * sec, rounds=rounds, steps=steps,
                host_cpu_util=cpu_wall[name][0] / cpu_wall[name][1])
    if name == 'p2p_jax':
      line.update(compile_s=jx.compile_s, steps_per_dispatch=jx.steps_per_dispatch,
                  convolutions=jx.convolutions,
                  parallelism=config.parallelism, flops_per_step=jx.flops_per_step)
      if jx.flops_per_step:
        tflops = jx.flops_per_step / sec / 1e12
        line['tflops_per_sec'] = tflops
        line['fraction_of_peak'] = (tflops * 1e12 / (peak * base['num_devices'])
                                    if peak else None)
      line['peak_memory_bytes'] = _peak_memory(dev)
    else:
      line.update(device=th.device, torch_version=th.version, torch_threads=th.threads,
                  torch_process='separate', malloc=th.malloc)
    lines.append(line)
  if len(lines) == 2:
    per_round = round_ratios(results['p2p_jax'], results['torch'])
    lines.append(dict(base, impl='ratio', p2p_jax_over_torch_images_per_sec=(
        lines[0]['images_per_sec'] / lines[1]['images_per_sec']),
        round_ratios=per_round, round_ratio_min=min(per_round),
        round_ratio_max=max(per_round)))
  return lines


def round_ratios(jax_sec: list[float], torch_sec: list[float]) -> list[float]:
  """p2p_jax / PyTorch images/s within each round (the two ran back to back), in order.

  Their spread shows how far the machine's drift moves the ratio during one run."""
  return [t / j for j, t in zip(jax_sec, torch_sec)]


def bench_pipeline(config, steps: int, warmup: int) -> list[dict]:
  from p2p_jax.data import model_data  # TensorFlow only from here.
  it = model_data.for_config(config).train_iter(config.batch_size)
  for _ in range(warmup):
    next(it)
  t = time.perf_counter()
  for _ in range(steps):
    next(it)
  sec = (time.perf_counter() - t) / steps
  return [dict(_common(config), impl='pipeline', dataset=config.data.dataset,
               images_per_sec=config.batch_size / sec, batch_ms=1e3 * sec, steps=steps)]


def bench_loop(config, steps: int, warmup: int) -> list[dict]:
  """The real train_and_evaluate (input pipeline, logging, metrics) vs the bare step.

  All in this process on the same config: the bare step is timed before and after the
  loop, and the loop is compared with the mean of the two, so that a machine whose speed
  drifts (shared VMs) biases neither. The loop's rate excludes compilation and its first
  dispatches (``WORKDIR/train_stats.json``).
  """
  import copy
  import os
  import tempfile

  from p2p_jax import train
  (before,) = bench_train(config, steps, warmup, rounds=1, with_torch=False)
  with tempfile.TemporaryDirectory() as workdir:
    c = copy.deepcopy(config)  # Keeps num_train_steps' steps-or-epochs field type.
    with c.unlocked():
      c.num_train_steps = steps + warmup
      c.log_every_steps = max(1, steps // 4)
      c.checkpoint_every_steps = 10 ** 9  # Only the final checkpoint.
      c.sample_every_steps = 10 ** 9
    train.train_and_evaluate(c, workdir)
    with open(os.path.join(workdir, 'train_stats.json')) as f:
      stats = json.load(f)
  (after,) = bench_train(config, steps, warmup, rounds=1, with_torch=False)
  step_ips = 0.5 * (before['images_per_sec'] + after['images_per_sec'])
  loop_ips = stats.get('steady_images_per_sec')
  return [before, after, dict(_common(config), impl='train_loop', images_per_sec=loop_ips,
                              dataset=config.data.dataset, steps=steps,
                              step_images_per_sec=step_ips,
                              loop_over_step=loop_ips / step_ips if loop_ips else None)]


def main(argv):
  del argv
  config = FLAGS.config
  if config is None:
    print('error: --config=configs/NAME.py is required', file=sys.stderr)
    sys.exit(2)
  allocator.warn_if_missing_tcmalloc(jax.default_backend())
  if FLAGS.what == 'pipeline':
    lines = bench_pipeline(config, FLAGS.steps, FLAGS.warmup)
  elif FLAGS.what == 'loop':
    lines = bench_loop(config, FLAGS.steps, FLAGS.warmup)
  else:
    lines = bench_train(config, FLAGS.steps, FLAGS.warmup, FLAGS.rounds, FLAGS.torch,
                        FLAGS.channels)
  for line in lines:
    print(json.dumps(line), flush=True)


if __name__ == '__main__':
  # tcmalloc on CPU-only machines where installed: p2p_jax/cpu/allocator.py.
  allocator.restart_with_preferred_malloc(__file__, __spec__ and __spec__.name)
  app.run(main)
