"""``train_and_evaluate(config, workdir)``: the training loop of every model (pix2pix,
CycleGAN; ``config.model.name``), through the model interface of ``p2p_jax.gan``.

Trains to ``config.num_train_steps`` (steps, or epochs as ``'200ep'``: see
``p2p_jax.schedules``), resuming from the latest checkpoint in ``WORKDIR/checkpoints/``, so a
finished run given a longer length trains on to it. Writes TensorBoard
summaries to ``WORKDIR`` and sample grids (input | output | target) to
``WORKDIR/samples/``. Metrics are fetched one dispatch late so the host never blocks the
device; a non-finite loss stops training with a clear message. Interrupting (Ctrl-C,
SIGTERM) saves a checkpoint of the last completed step first.

Multi-process jobs (``p2p_jax.distributed``) train one model on one mesh over every
process's devices; each process reads its own shard of the data. Every process joins each
checkpoint save (orbax writes one copy); only process 0 writes samples, summaries and
``train_stats.json``. SIGTERM on any host makes all hosts save the same step (JAX's
preemption sync point) and stop as an interrupted run does.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers

from p2p_jax import checkpoints, distributed, gan, images, schedules
from p2p_jax.cpu import allocator
from p2p_jax.rng import make_key
from p2p_jax.errors import CheckpointError, ConfigError, TrainingError
from p2p_jax.parallel import DataParallel, check_batch, check_mode

TrainState = object  # The model's (p2p_jax.gan).


# Fields whose change makes an existing checkpoint unusable.
_MODEL_FIELDS = ('image_size',)


def validate_config(config: ml_collections.ConfigDict, num_devices: int,
                    num_processes: int = 1) -> None:
  """Fails fast, with the fix in the message, on configs that cannot train.

  ``num_devices``: the devices of all ``num_processes`` processes (the global mesh)."""
  check_mode(config.parallelism, num_processes)
  check_batch(config.batch_size, num_devices, num_processes)
  gan.get_model(config).check_image_size(config, config.image_size)
  schedules.parse_length(config.num_train_steps)
  if config.get('num_epochs', -1) > 0:
    raise ConfigError(f'config.num_epochs is no longer read; set the run length as '
                      f"num_train_steps='{config.num_epochs}ep' (epochs) or a step count.")
  for name in ('lr_constant_epochs', 'lr_decay_epochs'):
    if config.optim[name] < 0:
      raise ConfigError(f'optim.{name} must be >= 0, got {config.optim[name]}.')
  if config.data.preprocess in ('resize_and_crop', 'scale_width_and_crop') and \
      config.data.load_size < config.image_size:
    raise ConfigError(f'data.load_size ({config.data.load_size}) must be >= image_size '
                      f'({config.image_size}) to crop from it.')
  if config.steps_per_dispatch < 1:
    raise ConfigError('steps_per_dispatch must be >= 1.')
  for name in ('checkpoint_every_steps', 'log_every_steps'):
    if config[name] < 1:
      raise ConfigError(f'{name} must be >= 1, got {config[name]}.')


def _check_compatible(saved: ml_collections.ConfigDict, config: ml_collections.ConfigDict):
  diffs = [f'model.{k}: checkpoint {saved.model[k]!r} vs now {config.model[k]!r}'
           for k in config.model if k in saved.model and saved.model[k] != config.model[k]
           and k != 'sync_batch_stats']
  if diffs:
    raise CheckpointError(
        'The workdir holds checkpoints of a different model:\n  ' + '\n  '.join(diffs) +
        '\nUse a new --workdir, or the same model settings.')


def _fmt_time(s: float) -> str:
  s = int(s)
  return f'{s // 3600}h{s % 3600 // 60:02d}m' if s >= 3600 else f'{s // 60}m{s % 60:02d}s'


def _install_sigterm_as_interrupt():
  def handler(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')
  try:
    return signal.signal(signal.SIGTERM, handler)
  except ValueError:  # Not in the main thread.
    return None


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains the configured model; returns the final (single-copy) train state."""
  from p2p_jax.data import model_data  # TensorFlow only from here.

  model = gan.get_model(config)
  devices = jax.devices()  # Every process's: one global mesh.
  validate_config(config, len(devices), jax.process_count())
  allocator.warn_if_missing_tcmalloc(devices[0].platform)
  # Process 0 prepares a tfds dataset first; the others then open it.
  data = distributed.main_process_first('prepare data', lambda: model_data.for_config(config))
  info = data.info
  channels = (info.channels_in, info.channels_out)
  steps_per_epoch = info.steps_per_epoch
  num_steps = schedules.total_steps(config.num_train_steps, steps_per_epoch)
  os.makedirs(workdir, exist_ok=True)

  dp = DataParallel.from_config(config, info, devices=devices)
  nets = dp.nets
  ckpt = checkpoints.Checkpointer(workdir, config.max_checkpoints_to_keep)
  init_key = make_key(config.seed)
  init = lambda: model.init_state(nets, config, info, init_key, len(devices))  # noqa: E731
  latest = ckpt.latest_step()
  if latest is not None:
    _, saved, _ = ckpt.restore_meta(latest)
    _check_compatible(saved, config)
    state = ckpt.restore_state(jax.eval_shape(init), latest)
    logging.info('resuming from step %d (%s)', latest, ckpt.directory)
    print(f'resuming from step {latest}', flush=True)
  else:
    state = init()
  start_step = int(state.step)
  _log_length(config, data, num_steps, steps_per_epoch, start_step)

  writer = metric_writers.create_default_writer(
      workdir, just_logging=jax.process_index() > 0, asynchronous=True)
  if start_step == 0:
    writer.write_hparams(_flat_hparams(config))

  k = config.steps_per_dispatch
  per_process_batch = config.batch_size // jax.process_count()
  train_iter = data.train_iter(per_process_batch, start_step=start_step,
                               process_index=jax.process_index(),
                               process_count=jax.process_count())
  sample_batch = data.sample_batch(config.num_sample_images)
  main_process = distributed.is_main_process()  # Writes samples and evaluates.
  evaluator = (_make_periodic_evaluator(config, data, nets, writer)
               if main_process else None)

  counts = ', '.join(f'{n:,d} params {k}' for k, n in model.param_counts(state).items())
  logging.info('training %s on %s -> %s, %s, %d device(s) [%s, convolutions: %s], '
               'steps %d..%d', model.NAME, config.data.dataset, workdir, counts,
               len(devices), dp.mode, dp.conv_plan.forms, start_step, num_steps)
  dstate = dp.put_state(state)
  del state
  step = start_step
  pending = None  # (first step of the dispatch, device metrics), fetched one dispatch late.
  t0, last_log_t, last_log_step = time.time(), time.time(), start_step
  steady = None  # (time, step) after the first dispatch has compiled and run.
  # One process: SIGTERM interrupts at once. Several: JAX's preemption service notes it
  # and every process stops at the same dispatch (distributed.preemption_point).
  old_handler = _install_sigterm_as_interrupt() if jax.process_count() == 1 else None
  dispatches = 0

  def host_state():
    return jax.device_get(dp.get_state(dstate))

  def flush(pending_):
    first, m = pending_
    for i, vals in enumerate(dp.host_metrics(m)):
      s = first + i + 1
      bad = {n: v for n, v in vals.items() if not math.isfinite(v)}
      if bad:
        raise TrainingError(
            f'Non-finite loss at step {s}: {bad}. The last good checkpoint is kept in '
            f'{ckpt.directory}. Lower optim.lr, check the data for NaNs, or use dtype=float32.')
      if s % config.log_every_steps == 0 or s == num_steps:
        writer.write_scalars(s, vals)
    return vals

  try:
    while step < num_steps:
      n = min(k, num_steps - step)
      batch = next(train_iter)
      if n < k:  # Final partial dispatch: run the remaining steps one by one.
        batch = jax.tree.map(lambda x: x[:n], batch)
        for i in range(n):
          b = jax.tree.map(lambda x: x[i], batch)
          dstate, m = dp.step_one(dstate, dp.put_batch(b, stacked=False))
          if pending is not None:
            flush(pending)
          pending = (step, m)
          step += 1
        break
      dstate, m = dp.step(dstate, dp.put_batch(batch))
      if pending is not None:
        vals = flush(pending)
      pending = (step, m)
      step += k
      dispatches += 1
      if distributed.preemption_point(dispatches):
        raise KeyboardInterrupt('preempted')
      if steady is None and step - start_step >= 2 * k:
        jax.block_until_ready(m)
        steady = (time.time(), step)
      crossed = lambda every: every > 0 and step // every != (step - k) // every  # noqa: E731
      if crossed(config.log_every_steps) and step > start_step + k:  # vals exists.
        now = time.time()
        rate = (step - last_log_step) / max(now - last_log_t, 1e-9)
        eta = (num_steps - step) / max(rate, 1e-9)
        logging.info('step %d/%d | %s | %.2f steps/s, %.1f img/s | ETA %s', step, num_steps,
                     model.progress(vals), rate, rate * config.batch_size, _fmt_time(eta))
        writer.write_scalars(step, {'steps_per_sec': rate})
        last_log_t, last_log_step = now, step
      if crossed(config.sample_every_steps) and main_process:
        _write_samples(workdir, step, dp, dstate, sample_batch, writer, config)
      if evaluator is not None and crossed(config.eval_every_steps):
        evaluator(step, dp.get_state(dstate))
      if crossed(config.checkpoint_every_steps):
        ckpt.save(step, host_state(), config, channels)
    if pending is not None:
      flush(pending)  # Blocks on the last step.
      pending = None
    loop_end = time.time()
  except KeyboardInterrupt:
    if pending is not None:
      flush(pending)
    logging.warning('interrupted: saving a checkpoint at step %d', step)
    print(f'interrupted: saving checkpoint at step {step} in {ckpt.directory}', flush=True)
    if ckpt.latest_step() != step:
      ckpt.save(step, host_state(), config, channels)
    ckpt.wait()
    raise
  finally:
    if old_handler is not None:
      signal.signal(signal.SIGTERM, old_handler)

  final = host_state()
  if ckpt.latest_step() != step:
    ckpt.save(step, final, config, channels)
  if main_process and (config.sample_every_steps <= 0 or step % config.sample_every_steps):
    _write_samples(workdir, step, dp, dstate, sample_batch, writer, config)
  ckpt.wait()
  writer.flush()
  elapsed = time.time() - t0
  _write_train_stats(workdir, config, start_step, step, elapsed, steady, loop_end)
  logging.info('done: %d steps in %s; checkpoints in %s, samples in %s', step - start_step,
               _fmt_time(elapsed), ckpt.directory, os.path.join(workdir, 'samples'))
  logging.info('process %d of %d: final state fingerprint %s (the same on every process)',
               jax.process_index(), jax.process_count(), distributed.fingerprint(final))
  return final


def _log_length(config, data, num_steps, steps_per_epoch, start_step) -> None:
  """The first progress lines: the run's length in steps and epochs, the lr schedule."""
  logging.info('%s (an epoch: %s)', schedules.describe(num_steps, steps_per_epoch,
                                                       config.optim), data.epoch_note())
  warning = schedules.lr_zero_warning(num_steps, steps_per_epoch, config.optim)
  if warning:
    logging.warning('%s', warning)
  if start_step >= num_steps:
    msg = (f'the checkpoint is at step {start_step}, the run length is {num_steps} steps: '
           'nothing to train. To train longer, raise --config.num_train_steps (steps, or '
           "epochs as e.g. '300ep').")
    logging.warning('%s', msg)
    print(msg, flush=True)


def _write_samples(workdir, step, dp, dstate, sample_batch, writer, config):
  state = dp.get_state(dstate)
  key = jax.random.fold_in(make_key(config.seed + 1), step)
  grid, tag = dp.model.sample_grid(dp.nets, state, sample_batch, key)
  path = images.save_png(os.path.join(workdir, 'samples', f'step_{step:07d}.png'), grid)
  writer.write_images(step, {tag: grid[None]})
  logging.info('samples: %s', path)


def _make_periodic_evaluator(config, data, nets, writer):
  """Periodic evaluation on a fixed subset (``eval_every_steps``), or None when disabled."""
  if config.eval_every_steps <= 0:
    return None
  from p2p_jax import evaluation
  return evaluation.make_periodic_evaluator(config, data, nets, writer)


def _write_train_stats(workdir, config, start_step, step, elapsed, steady, loop_end) -> None:
  """WORKDIR/train_stats.json: this run's throughput, excluding compilation and start-up."""
  stats = {'start_step': start_step, 'end_step': step, 'wall_s': elapsed,
           'batch_size': config.batch_size}
  if steady is not None and step > steady[1]:
    secs = loop_end - steady[0]
    stats['steady_steps_per_sec'] = (step - steady[1]) / secs
    stats['steady_images_per_sec'] = stats['steady_steps_per_sec'] * config.batch_size
  if jax.process_index() == 0:
    with open(os.path.join(workdir, 'train_stats.json'), 'w') as f:
      json.dump(stats, f, indent=1)


def _count(tree) -> int:
  return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


def _flat_hparams(config: ml_collections.ConfigDict) -> dict:
  out = {}

  def walk(prefix, d):
    for k, v in d.items():
      if isinstance(v, dict):
        walk(f'{prefix}{k}.', v)
      elif isinstance(v, (int, float, str, bool)):
        out[prefix + k] = v
  walk('', config.to_dict())
  return out
