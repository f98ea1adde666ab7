"""Data parallelism over the local devices: one per-device step, two ways to map it.

``config.parallelism``:
  'shard_map': ``jit(shard_map(step))`` over a 1-D mesh of the devices (JAX's recommended
    path for new code). State is replicated (``P()``), the batch is split on its batch axis.
  'pmap': ``jax.pmap(step)`` (what the pix2pix-on-JAX brief names; maintenance mode in JAX).
    State carries a leading device axis; the batch is reshaped to [devices, per_device, ...].
Both run the same ``train_step`` with the device axis named ``train_step.AXIS``, so
gradients and metrics are averaged across devices identically; tests check that they agree
with each other and with a single device. How the step's convolutions are computed (and
compiled) on the devices' backend is ``p2p_jax.convolution.step_plan``'s decision.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from p2p_jax import convolution
from p2p_jax.errors import ConfigError
from p2p_jax.train_step import (AXIS, Networks, TrainState, make_networks, multi_step,
                                train_step)

MODES = ('shard_map', 'pmap')


def check_batch(global_batch: int, num_devices: int) -> int:
  """Per-device batch; a clear error when the global batch does not divide evenly."""
  if global_batch < 1 or global_batch % num_devices:
    lower = global_batch // num_devices * num_devices
    options = sorted({m for m in (lower, lower + num_devices) if m > 0})
    raise ConfigError(
        f'batch_size {global_batch} must be a positive multiple of the number of devices '
        f'({num_devices}); try ' + ' or '.join(f'--config.batch_size={m}' for m in options) + '.')
  return global_batch // num_devices


class DataParallel:
  """Places state and batches on the devices and runs the mapped train step."""

  @classmethod
  def from_config(cls, config, output_channels: int, steps_per_epoch: int | None = None,
                  devices=None) -> 'DataParallel':
    """The train step exactly as ``train_and_evaluate`` runs it, for ``config``: the
    networks (``make_networks``) and the mapping (``config.parallelism``,
    ``config.steps_per_dispatch``). The bench builds its step here too, so it times what
    training runs."""
    nets = make_networks(config, output_channels, steps_per_epoch, multi_device=True)
    return cls(nets, config.parallelism, devices, steps_per_dispatch=config.steps_per_dispatch)

  def __init__(self, nets: Networks, mode: str = 'shard_map', devices=None,
               steps_per_dispatch: int = 1, donate: bool = True):
    if mode not in MODES:
      raise ConfigError(f'parallelism must be one of {MODES}, got {mode!r}.')
    self.mode = mode
    self.nets = nets
    self.devices = list(devices if devices is not None else jax.local_devices())
    self.num_devices = len(self.devices)
    self.steps_per_dispatch = steps_per_dispatch
    # How the step computes its convolutions on these devices (``.forms`` for logs) and
    # the XLA compiler options that go with that.
    self.conv_plan = convolution.step_plan(self.devices[0].platform, mode)
    self.mesh = Mesh(np.array(self.devices), (AXIS,))
    self._stacked = NamedSharding(self.mesh, P(AXIS))  # pmap: leading device axis
    self._replicated = NamedSharding(self.mesh, P())
    self._step = self._build(nets, steps_per_dispatch, donate)
    self._step_one = self._step if steps_per_dispatch == 1 else self._build(nets, 1, donate)

  def _build(self, nets: Networks, k: int, donate: bool) -> Callable:
    step = self.conv_plan.wrap(
        functools.partial(multi_step if k > 1 else train_step, nets=nets, axis_name=AXIS))
    donate_args = (0,) if donate else ()
    if self.mode == 'pmap':
      return jax.pmap(step, axis_name=AXIS, devices=self.devices, donate_argnums=donate_args)
    batch_spec = P(None, AXIS) if k > 1 else P(AXIS)
    # check_vma=False: with it on, autodiff already psums the cotangent of a replicated
    # parameter, and train_step's explicit gradient pmean (shared with pmap) would turn
    # the mean into a sum (N x gradients on N devices; tests compare against 1 device).
    mapped = jax.shard_map(step, mesh=self.mesh, in_specs=(P(), batch_spec),
                           out_specs=(P(), P()), check_vma=False)
    return jax.jit(mapped, donate_argnums=donate_args,
                   compiler_options=self.conv_plan.compiler_options)

  # --- placement ------------------------------------------------------------------------
  def put_state(self, state: TrainState) -> TrainState:
    if self.mode == 'pmap':
      stack = lambda x: np.broadcast_to(np.asarray(x)[None], (self.num_devices, *np.shape(x)))
      return jax.device_put(jax.tree.map(stack, jax.device_get(state)), self._stacked)
    return jax.device_put(state, self._replicated)

  def get_state(self, state: TrainState) -> TrainState:
    """One copy of the (replicated) state, e.g. for checkpointing or sampling."""
    if self.mode == 'pmap':
      return jax.tree.map(lambda x: x[0], state)
    return state

  def put_batch(self, batch: dict[str, np.ndarray], stacked: bool | None = None
                ) -> dict[str, jax.Array]:
    """``batch`` leaves are [global_batch, ...], or [steps, global_batch, ...] when
    ``stacked`` (default: steps_per_dispatch > 1)."""
    stacked = self.steps_per_dispatch > 1 if stacked is None else stacked
    b_axis = 1 if stacked else 0
    if self.mode == 'pmap':
      def split(x):
        x = np.asarray(x)
        n = x.shape[b_axis]
        check_batch(n, self.num_devices)
        shape = x.shape[:b_axis] + (self.num_devices, n // self.num_devices) + x.shape[b_axis + 1:]
        x = x.reshape(shape)
        return np.moveaxis(x, b_axis, 0) if b_axis else x
      return jax.device_put(jax.tree.map(split, batch), self._stacked)
    for x in jax.tree.leaves(batch):
      check_batch(x.shape[b_axis], self.num_devices)
    spec = P(None, AXIS) if stacked else P(AXIS)
    return jax.device_put(batch, NamedSharding(self.mesh, spec))

  # --- stepping -------------------------------------------------------------------------
  def step(self, state: TrainState, batch) -> tuple[TrainState, dict[str, jax.Array]]:
    """Runs ``steps_per_dispatch`` train steps; metrics have a device axis under pmap and a
    steps axis when steps_per_dispatch > 1 (use ``host_metrics``)."""
    return self._step(state, batch)

  def step_one(self, state: TrainState, batch) -> tuple[TrainState, dict[str, jax.Array]]:
    """A single train step on an unstacked batch (the tail of a multi-step run)."""
    return self._step_one(state, batch)

  def host_metrics(self, metrics) -> list[dict[str, float]]:
    """Metrics of each step of a dispatch, as Python floats (blocks)."""
    m = jax.device_get(metrics)
    if self.mode == 'pmap':
      m = jax.tree.map(lambda x: x[0], m)
    m = jax.tree.map(np.atleast_1d, m)
    n = len(next(iter(m.values())))
    return [{k: float(v[i]) for k, v in m.items()} for i in range(n)]

  @property
  def lower(self) -> Callable:
    """The jitted/pmapped step, for ``.lower(...)`` (cost analysis in the benchmark)."""
    return self._step.lower
