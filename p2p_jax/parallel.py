"""Data parallelism over every device of every process: one per-device step, two mappings.

``config.parallelism``:
  'shard_map': ``jit(shard_map(step))`` over a 1-D mesh of all devices of all processes
    (``jax.devices()``; JAX's recommended path). State is replicated (``P()``); each process
    feeds its own slice of the global batch, assembled into one global array
    (``jax.make_array_from_process_local_data``), split on the batch axis. Gradients,
    metrics and synchronised BatchNorm statistics are averaged over the whole mesh, and
    ``lax.axis_index`` (dropout keys) is the global device index.
  'pmap': ``jax.pmap(step)`` (what the pix2pix-on-JAX brief names; maintenance mode in JAX).
    State carries a leading device axis; the batch is reshaped to [devices, per_device, ...].
    Single-process only: a multi-process job gets a ConfigError at start-up.
Both run the same per-device step of the configured model (``p2p_jax.gan``: pix2pix or
CycleGAN) with the device axis named ``AXIS``, so gradients and metrics are averaged across
devices identically; tests check that they agree with each other and with a single device.
State fields the model lists in ``PER_DEVICE_FIELDS`` (CycleGAN's image pools) have one
entry per device: a leading [num_devices] axis, split over the devices (``P(AXIS)``; under
pmap each device sees its [1, ...] slice), instead of one replicated copy. How the step's
convolutions are computed (and compiled) on the devices' backend is
``p2p_jax.convolution.step_plan``'s decision.

Nothing here dispatches a computation to read values back: ``get_state`` and
``host_metrics`` wait for the step and copy the device buffers to the host. (Indexing a
device-sharded array, ``x[0]``, is itself a small all-device program with an all-reduce;
dispatched per leaf while the step's collectives ran, that hung the 2 fake CPU devices.)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from p2p_jax import convolution, distributed, gan, pix2pix
from p2p_jax.errors import ConfigError

AXIS = pix2pix.AXIS  # The same name in every model module.
TrainState = Networks = Any  # Those of the model that runs (p2p_jax.gan).

MODES = ('shard_map', 'pmap')


def check_batch(global_batch: int, num_devices: int, num_processes: int = 1) -> int:
  """Per-device batch; a clear error when the global batch does not divide evenly.

  ``num_devices`` counts the devices of all ``num_processes`` processes."""
  if global_batch < 1 or global_batch % num_devices:
    lower = global_batch // num_devices * num_devices
    options = sorted({m for m in (lower, lower + num_devices) if m > 0})
    where = (f'{num_devices}' if num_processes == 1 else
             f'{num_devices} = {num_processes} processes x {num_devices // num_processes}')
    raise ConfigError(
        f'batch_size {global_batch} must be a positive multiple of the number of devices '
        f'({where}); try ' + ' or '.join(f'--config.batch_size={m}' for m in options) + '.')
  return global_batch // num_devices


def check_mode(mode: str, num_processes: int) -> None:
  """A clear error for mappings this project cannot run as configured."""
  if mode not in MODES:
    raise ConfigError(f'parallelism must be one of {MODES}, got {mode!r}.')
  if mode == 'pmap' and num_processes > 1:
    raise ConfigError(
        f'parallelism=pmap runs in one process only (this job has {num_processes}): pmap '
        'maps over local devices with per-host state copies; use --config.parallelism='
        'shard_map, which trains one model over all hosts\' devices.')


def host_copy(x) -> np.ndarray:
  """One replica of ``x`` on the host, read from this process's first device: no
  computation is dispatched (``x[0]`` on a sharded array would be one, with collectives)."""
  if not isinstance(x, jax.Array):
    return np.asarray(x)
  return np.asarray(x.addressable_shards[0].data)


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
    check_mode(mode, jax.process_count())
    self.mode = mode
    self.model = model
    self.nets = nets
    self.devices = list(devices if devices is not None else jax.devices())
    self.num_devices = len(self.devices)
    self.num_processes = len({d.process_index for d in self.devices})
    self.steps_per_dispatch = steps_per_dispatch
    # How the step computes its convolutions on these devices (``.forms`` for logs) and
    # the XLA compiler options that go with that.
    self.conv_plan = convolution.step_plan(self.devices[0].platform, mode)
    self.mesh = Mesh(np.array(self.devices), (AXIS,))
    self._stacked = NamedSharding(self.mesh, P(AXIS))  # pmap: leading device axis
    self._replicated = NamedSharding(self.mesh, P())
    self._step = self._build(nets, steps_per_dispatch, donate)
    self._step_one = self._step if steps_per_dispatch == 1 else self._build(nets, 1, donate)
    self._compiled: dict[str, Callable] = {}  # Multi-process: ahead-of-time compiled steps.

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
    """``state`` (the same values in every process) on the devices: replicated, except
    the model's per-device fields, which must have a leading [num_devices] axis."""
    self._check_per_device(state)
    host = jax.tree.map(host_copy, state)
    per_device = set(self.model.PER_DEVICE_FIELDS)
    if self.mode == 'pmap':
      stack = lambda x: np.broadcast_to(x[None], (self.num_devices, *np.shape(x)))  # noqa
      split = lambda x: x[:, None]  # [D, ...] -> [D, 1, ...]: each device its slice.  # noqa
      placed = self._map_fields(host, lambda f: split if f in per_device else stack)
      return jax.device_put(placed, self._stacked)
    mine = [i for i, d in enumerate(self.devices) if d.process_index == jax.process_index()]

    def replicated(x):
      return jax.make_array_from_process_local_data(self._replicated, x)

    def sharded(x):  # This process's rows of the [num_devices, ...] axis.
      return jax.make_array_from_process_local_data(
          self._stacked, x[mine[0]:mine[-1] + 1], np.shape(x))
    return self._map_fields(host, lambda f: sharded if f in per_device else replicated)

  def _map_fields(self, state, fn_for_field):
    """Maps every leaf of each state field with ``fn_for_field(field_name)``."""
    if not self.model.PER_DEVICE_FIELDS:
      return jax.tree.map(fn_for_field(None), state)
    return state.replace(**{f.name: jax.tree.map(fn_for_field(f.name), getattr(state, f.name))
                            for f in dataclasses.fields(state)})

  def get_state(self, state: TrainState) -> TrainState:
    """One copy of the replicated state on the host, as numpy arrays (per-device fields:
    every device's entry), e.g. for checkpointing or sampling. Waits for the step that
    produced ``state`` on every device first; reads buffers, dispatches nothing."""
    jax.block_until_ready(state)
    per_device = set(self.model.PER_DEVICE_FIELDS)
    return self._map_fields(state, lambda f: self._all_devices if f in per_device
                            else self._replica)

  def _replica(self, x) -> np.ndarray:
    y = host_copy(x)
    if self.mode == 'pmap' and y.ndim == np.ndim(x):  # The device axis, size 1 per shard.
      y = y[0]
    return y

  def _all_devices(self, x) -> np.ndarray:
    """A per-device field's [num_devices, ...] value (pmap: from [num_devices, 1, ...])."""
    if not x.is_fully_addressable:
      from jax.experimental import multihost_utils
      x = multihost_utils.process_allgather(x, tiled=True)
    y = np.asarray(x)
    return y[:, 0] if self.mode == 'pmap' else y

  def put_batch(self, batch: dict[str, np.ndarray], stacked: bool | None = None
                ) -> dict[str, jax.Array]:
    """``batch`` leaves are this process's slice of the global batch, [batch, ...] or
    [steps, batch, ...] when ``stacked`` (default: steps_per_dispatch > 1); with one
    process that is the whole global batch. Returns global arrays over the mesh."""
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
    sharding = NamedSharding(self.mesh, P(None, AXIS) if stacked else P(AXIS))

    def to_global(x):
      x = np.asarray(x)
      shape = list(x.shape)
      shape[b_axis] *= self.num_processes
      check_batch(shape[b_axis], self.num_devices, self.num_processes)
      return jax.make_array_from_process_local_data(sharding, x, tuple(shape))
    return jax.tree.map(to_global, batch)

  # --- stepping -------------------------------------------------------------------------
  def step(self, state: TrainState, batch) -> tuple[TrainState, dict[str, jax.Array]]:
    """Runs ``steps_per_dispatch`` train steps; metrics have a device axis under pmap and a
    steps axis when steps_per_dispatch > 1 (use ``host_metrics``)."""
    return self._in_step(self._step, 'step', state, batch)

  def step_one(self, state: TrainState, batch) -> tuple[TrainState, dict[str, jax.Array]]:
    """A single train step on an unstacked batch (the tail of a multi-step run)."""
    return self._in_step(self._step_one, 'step_one', state, batch)

  def _in_step(self, fn: Callable, name: str, state, batch):
    """Several processes: compile first, then wait for every process before the first
    run, so all reach the step's first collective together (not one compile apart)."""
    if self.num_processes == 1:
      return fn(state, batch)
    if name not in self._compiled:
      self._compiled[name] = fn.lower(state, batch).compile()
      distributed.barrier(f'compiled {name}')
    return self._compiled[name](state, batch)

  def host_metrics(self, metrics) -> list[dict[str, float]]:
    """Metrics of each step of a dispatch, as Python floats (blocks)."""
    jax.block_until_ready(metrics)
    m = jax.tree.map(self._replica, metrics)  # Replicated: any device's copy is the value.
    m = jax.tree.map(np.atleast_1d, m)
    n = len(next(iter(m.values())))
    return [{k: float(v[i]) for k, v in m.items()} for i in range(n)]

  @property
  def lower(self) -> Callable:
    """The jitted/pmapped step, for ``.lower(...)`` (cost analysis in the benchmark)."""
    return self._step.lower
