"""A run's length and its learning-rate schedule, both in optimiser steps. No TensorFlow.

The length (``config.num_train_steps``) is a number of steps (``80000``) or of epochs over
the training split (``'200ep'``); one epoch is ``steps_per_epoch`` steps (pix2pix: training
pairs // batch size; CycleGAN: max(|A|, |B|) at batch 1). The learning-rate schedule is set
in epochs by the ``optim`` section alone and never depends on the length, so a run resumed
with a longer length follows the same curve.
"""

from __future__ import annotations

import math
import re

import jax.numpy as jnp
import ml_collections
import optax

from p2p_jax.errors import ConfigError

_LENGTH = re.compile(r'^(\d+(?:\.\d*)?|\.\d+)\s*(ep|epochs?|steps?)?$', re.IGNORECASE)
_LENGTH_HELP = ("num_train_steps takes steps (e.g. --config.num_train_steps=80000) or epochs "
                "over the training split (e.g. --config.num_train_steps=200ep)")


def parse_length(value: int | float | str) -> tuple[float, str]:
  """``(count, unit)`` of a run length, unit 'steps' or 'epochs'; steps are whole numbers.

  Accepts an int (steps), or a string: ``'1500'``, ``'1500steps'``, ``'200ep'``,
  ``'200epochs'``, ``'0.5ep'`` (case-insensitive; ``_`` separators allowed).
  """
  if isinstance(value, bool) or not isinstance(value, (int, float, str)):
    raise ConfigError(f'{_LENGTH_HELP}; got {value!r}.')
  if isinstance(value, str):
    m = _LENGTH.match(value.strip().replace('_', ''))
    if not m:
      raise ConfigError(f'{_LENGTH_HELP}; got {value!r}.')
    count = float(m.group(1))
    unit = 'epochs' if (m.group(2) or '').lower().startswith('ep') else 'steps'
  else:
    count, unit = float(value), 'steps'
  if not count > 0 or not math.isfinite(count):
    raise ConfigError(f'{_LENGTH_HELP}, more than 0; got {value!r}.')
  if unit == 'steps' and count != int(count):
    raise ConfigError(f'{_LENGTH_HELP}; a step count is a whole number, got {value!r}.')
  return count, unit


def total_steps(length: int | float | str, steps_per_epoch: int) -> int:
  """The run's length in steps (epochs times ``steps_per_epoch``, rounded; at least 1)."""
  count, unit = parse_length(length)
  if unit == 'steps':
    return int(count)
  steps = round(count * steps_per_epoch)
  if steps < 1:
    raise ConfigError(f'num_train_steps={length!r} is less than one step ({steps_per_epoch} '
                      'steps per epoch); give more epochs or a step count.')
  return steps


def linear_decay(lr: float, steps_per_epoch: int, constant_epochs: int,
                 decay_epochs: int) -> optax.Schedule:
  """``lr`` for ``constant_epochs`` epochs, then a linear decay over ``decay_epochs`` epochs,
  updated once per epoch; constant throughout when ``decay_epochs`` is 0.

  The reference's ``lr_policy='linear'`` (``get_scheduler`` in models/networks.py of
  junyanz/pytorch-CycleGAN-and-pix2pix, the ``n_epochs``/``n_epochs_decay`` version):
  epoch ``e`` (counted from 0, ``epoch_count=1``) trains at
  ``lr * (1 - max(0, e + 1 - n_epochs) / (n_epochs_decay + 1))``: 1 through epoch
  ``n_epochs - 1``, ``n_epochs_decay / (n_epochs_decay + 1)`` at epoch ``n_epochs``, down to
  ``1 / (n_epochs_decay + 1)`` in the last epoch of the reference's run. (Its train.py steps the
  scheduler at the start of every epoch, so there the curve runs one epoch ahead.) Epochs past
  ``n_epochs + n_epochs_decay`` train at 0 where the reference formula goes negative.
  """
  if steps_per_epoch < 1 or constant_epochs < 0 or decay_epochs < 0:
    raise ConfigError(f'Bad schedule: steps_per_epoch {steps_per_epoch}, lr_constant_epochs '
                      f'{constant_epochs}, lr_decay_epochs {decay_epochs} (need >= 1, >= 0, '
                      '>= 0).')
  if decay_epochs == 0:
    return optax.constant_schedule(lr)

  def schedule(count):
    epoch = jnp.asarray(count) // steps_per_epoch
    frac = jnp.maximum(0, epoch + 1 - constant_epochs) / (decay_epochs + 1)
    return lr * jnp.clip(1.0 - frac, 0.0, 1.0)

  return schedule


def learning_rate_fn(optim: ml_collections.ConfigDict,
                     steps_per_epoch: int | None) -> optax.Schedule:
  """The ``optim`` section's schedule (``lr``, ``lr_constant_epochs``, ``lr_decay_epochs``).

  ``steps_per_epoch`` None: a constant ``lr``, for networks restored to sample or evaluate
  (never trained; the optimiser state has the same structure either way).
  """
  if steps_per_epoch is None:
    return optax.constant_schedule(optim.lr)
  return linear_decay(optim.lr, steps_per_epoch, optim.lr_constant_epochs,
                      optim.lr_decay_epochs)


def decay_steps(optim: ml_collections.ConfigDict, steps_per_epoch: int) -> tuple[int, int] | None:
  """(first decayed step, step from which the lr is 0), or None for a constant lr."""
  if optim.lr_decay_epochs <= 0:
    return None
  return (optim.lr_constant_epochs * steps_per_epoch,
          (optim.lr_constant_epochs + optim.lr_decay_epochs) * steps_per_epoch)


def describe(total: int, steps_per_epoch: int, optim: ml_collections.ConfigDict) -> str:
  """One line for the log: the length in steps and epochs, and the lr schedule."""
  epochs = f'{total / steps_per_epoch:.4g}'
  text = (f'length {total} steps = {epochs} epoch{"" if epochs == "1" else "s"} of '
          f'{steps_per_epoch} steps; lr {optim.lr:g}')
  decay = decay_steps(optim, steps_per_epoch)
  if decay is None:
    return text + ', constant'
  start, zero = decay
  text += (f' constant to step {start} (epoch {optim.lr_constant_epochs}), then decays '
           f'linearly each epoch to 0 at step {zero} (epoch '
           f'{optim.lr_constant_epochs + optim.lr_decay_epochs})')
  if start >= total:
    text += '; this run ends before the decay starts'
  return text


def lr_zero_warning(total: int, steps_per_epoch: int,
                    optim: ml_collections.ConfigDict) -> str | None:
  """A warning when the run goes past the step where the schedule reaches lr 0."""
  decay = decay_steps(optim, steps_per_epoch)
  if decay is None or decay[1] >= total:
    return None
  return (f'steps {decay[1]}..{total} train at learning rate 0 (the schedule ends at epoch '
          f'{optim.lr_constant_epochs + optim.lr_decay_epochs}); to keep learning, raise '
          '--config.optim.lr_decay_epochs (from the current epoch on, the lr then follows the '
          'stretched curve).')
