"""Data parallelism over the local devices: one per-device step, two ways to map it.

``config.parallelism``:
  'shard_map': ``jit(shard_map(step))`` over a 1-D mesh of the devices (JAX's recommended
    path for new code). State is replicated (``P()``), the batch is split on its batch axis.
  'pmap': ``jax.pmap(step)`` (what the pix2pix-on-JAX brief names; maintenance mode in JAX).
    State carries a leading device axis; the batch is reshaped to [devices, per_device, ...].
Both run the same per-device step of the configured model (``p2p_jax.gan``: pix2pix or
CycleGAN) with the device axis named ``AXIS``, so gradients and metrics are averaged across
devices identically; tests check that they agree with each other and with a single device.
State fields the model lists in ``PER_DEVICE_FIELDS`` (CycleGAN's image pools) have one
entry per device: a leading [num_devices] axis, split over the devices (``P(AXIS)``; under
pmap each device sees its [1, ...] slice), instead of one replicated copy. How the step's
convolutions are computed (and compiled) on the devices' backend is
``p2p_jax.convolution.step_plan``'s decision.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from p2p_jax import convolution, gan, pix2pix
from p2p_jax.errors import ConfigError

AXIS = pix2pix.AXIS  # The same name in every model module.
TrainState = Networks = Any  # Those of the model that runs (p2p_jax.gan).

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
  def from_config(cls, config, data: gan.DataInfo | int, steps_per_epoch: int | None = None,
                  devices=None) -> 'DataParallel':
    """The train step exactly as ``train_and_evaluate`` runs it, for ``config``: the
    model (``config.model.name``) and its networks (``model.build``) and the mapping
    (``config.parallelism``, ``config.steps_per_dispatch``). The bench builds its step here
    too, so it times what training runs. ``data``: the data's channels and epoch length
    (an int: pix2pix's output channels, with ``steps_per_epoch``, as before)."""
    model = gan.get_model(config)
    if isinstance(data, int):  # pix2pix's (output_channels, steps_per_epoch) form.
      nets = pix2pix.make_networks(config, data, steps_per_epoch, multi_device=True)
    else:
      nets = model.build(config, data, multi_device=True)
    return cls(nets, config.parallelism, devices, steps_per_dispatch=config.steps_per_dispatch,
               model=model)

  def __init__(self, nets: Networks, mode: str = 'shard_map', devices=None,
               steps_per_dispatch: int = 1, donate: bool = True, model=pix2pix):
    if mode not in MODES:
      raise ConfigError(f'parallelism must be one of {MODES}, got {mode!r}.')
    self.mode = mode
    self.model = model
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

  def _state_spec(self, replicated=P(), per_device=P(AXIS)):
    """A TrainState-shaped prefix: ``per_device`` for the model's per-device fields,
    ``replicated`` for the rest."""
    per_dev = self.model.PER_DEVICE_FIELDS
    if not per_dev:
      return replicated
    fields = [f.name for f in dataclasses.fields(self.model.TrainState)]
    return self.model.TrainState(**{f: per_device if f in per_dev else replicated
                                    for f in fields})

  def _build(self, nets: Networks, k: int, donate: bool) -> Callable:
    step = self.conv_plan.wrap(functools.partial(
        self.model.multi_step if k > 1 else self.model.train_step, nets=nets, axis_name=AXIS))
    donate_args = (0,) if donate else ()
    if self.mode == 'pmap':
      return jax.pmap(step, axis_name=AXIS, devices=self.devices, donate_argnums=donate_args)
    batch_spec = P(None, AXIS) if k > 1 else P(AXIS)
    state_spec = self._state_spec()
    # check_vma=False: with it on, autodiff already psums the cotangent of a replicated
    # parameter, and train_step's explicit gradient pmean (shared with pmap) would turn
    # the mean into a sum (N x gradients on N devices; tests compare against 1 device).
    mapped = jax.shard_map(step, mesh=self.mesh, in_specs=(state_spec, batch_spec),
                           out_specs=(state_spec, P()), check_vma=False)
    return jax.jit(mapped, donate_argnums=donate_args,
                   compiler_options=self.conv_plan.compiler_options)

  # --- placement ------------------------------------------------------------------------
  def _check_per_device(self, state) -> None:
    for f in self.model.PER_DEVICE_FIELDS:
      for x in jax.tree.leaves(getattr(state, f)):
        if np.shape(x)[0] != self.num_devices:
          raise ConfigError(
              f'The train state holds {f} for {np.shape(x)[0]} device(s) but runs on '
              f'{self.num_devices}: resume on as many devices as the run started with.')

  def put_state(self, state: TrainState) -> TrainState:
    """The state on the devices; per-device fields must have a leading [num_devices] axis."""
    self._check_per_device(state)
    if self.mode == 'pmap':
      stack = lambda x: np.broadcast_to(np.asarray(x)[None], (self.num_devices, *np.shape(x)))
      split = lambda x: np.asarray(x)[:, None]  # [D, ...] -> [D, 1, ...]: each its slice.
      host = jax.device_get(state)
      fns = self._state_spec(stack, split)
      placed = (jax.tree.map(stack, host) if callable(fns) else
                jax.tree.map(lambda fn, sub: jax.tree.map(fn, sub), fns, host,
                             is_leaf=callable))
      return jax.device_put(placed, self._stacked)
    shardings = self._state_spec(self._replicated, self._stacked)
    if isinstance(shardings, NamedSharding):
      return jax.device_put(state, shardings)
    return jax.device_put(state, jax.tree.map(
        lambda s, sub: jax.tree.map(lambda _: s, sub), shardings, state,
        is_leaf=lambda x: isinstance(x, NamedSharding)))

  def get_state(self, state: TrainState) -> TrainState:
    """One copy of the replicated state (per-device fields: all devices' entries), e.g.
    for checkpointing or sampling."""
    if self.mode == 'pmap':
      first = lambda x: x[0]
      merge = lambda x: x[:, 0]
      fns = self._state_spec(first, merge)
      if callable(fns):
        return jax.tree.map(first, state)
      return jax.tree.map(lambda fn, sub: jax.tree.map(fn, sub), fns, state, is_leaf=callable)
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
