"""pix2pix (Isola et al. 2017): its train state and the pure per-device train step.
No TensorFlow.

``train_step(state, batch, *, nets, axis_name)`` updates D once, then G once, from one
batch, computing G's forward pass a single time (its VJP is reused for G's update).
Under data parallelism ``axis_name`` names the device axis: gradients and metrics are
averaged over it, and BatchNorm statistics are synchronised over it when configured.
Generation (paper mode: dropout on, test-batch statistics) is ``p2p_jax.inference``. The
functions at the end are the model interface of ``p2p_jax.gan``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax import lax

from p2p_jax import losses, rng as rnglib, schedules
from p2p_jax.models import build_discriminator, build_generator

PyTree = Any
Batch = dict[str, jax.Array]  # {'input': [B,H,W,Cin], 'target': [B,H,W,Cout]} in [-1, 1]
AXIS = 'batch'


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: number of completed steps.
  rng: jax.Array  # uint32 [2] raw key data; per-step keys are folded from it.
  g_params: PyTree
  g_batch_stats: PyTree
  g_opt_state: PyTree
  d_params: PyTree
  d_batch_stats: PyTree
  d_opt_state: PyTree


@dataclasses.dataclass(frozen=True)
class Networks:
  """The static half of training: modules, optimisers and loss settings."""

  g: nn.Module
  d: nn.Module
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  gan_mode: str = 'vanilla'
  lambda_l1: float = 100.0
  lambda_gan: float = 1.0
  lambda_gp: float = 10.0  # Gradient-penalty weight; gan_mode 'wgangp' only.
  conditional_d: bool = True
  sync_batch_stats: bool = True


def make_networks(config: ml_collections.ConfigDict, output_channels: int,
                  steps_per_epoch: int | None = None, multi_device: bool = False) -> Networks:
  """Builds modules and optimisers from the config.

  ``steps_per_epoch`` turns the epoch-based lr schedule (``p2p_jax.schedules``) into steps;
  None gives a constant lr, for networks restored to sample or evaluate.
  ``multi_device``: the step will run with a device axis named ``AXIS``; BatchNorm
  synchronises over it when ``config.model.sync_batch_stats``.
  """
  axis = AXIS if (multi_device and config.model.sync_batch_stats) else None
  lr = schedules.learning_rate_fn(config.optim, steps_per_epoch)
  tx = lambda: optax.adam(lr, b1=config.optim.b1, b2=config.optim.b2)  # noqa: E731
  losses.check_gan_mode(config.loss.gan_mode)
  return Networks(
      g=build_generator(config, output_channels, axis_name=axis),
      d=build_discriminator(config, axis_name=axis),
      g_tx=tx(), d_tx=tx(), gan_mode=config.loss.gan_mode,
      lambda_l1=float(config.loss.lambda_l1), lambda_gan=float(config.loss.lambda_gan),
      lambda_gp=float(config.loss.get('lambda_gp', 10.0)),
      conditional_d=bool(config.loss.conditional_d),
      sync_batch_stats=bool(config.model.sync_batch_stats))


def create_train_state(nets: Networks, rng: int | jax.Array, input_shape: tuple[int, ...],
                       output_channels: int) -> TrainState:
  """Initialises both networks (weights ~ N(0, init_std)) and their Adam states.

  ``input_shape`` is one example's [H, W, C_in]; initialisation is shape-only, so the
  networks built for any device count give the same parameters for the same key.
  """
  g_key, d_key, step_key = jax.random.split(rnglib.make_key(rng), 3)
  x = jnp.zeros((1, *input_shape), jnp.float32)
  y = jnp.zeros((1, *input_shape[:2], output_channels), jnp.float32)
  # Initialise single-device versions (no axis_name) so init runs outside any mapped axis.
  g = nets.g.clone(axis_name=None)
  d = nets.d.clone(axis_name=None)

  @jax.jit
  def init(g_key, d_key, step_key):  # Jitted: eager op-by-op init is ~100x slower.
    g_vars = g.init({'params': g_key}, x, train=False)
    d_vars = d.init({'params': d_key}, losses.d_input(x, y, nets.conditional_d), train=False)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        rng=jax.random.key_data(step_key),
        g_params=g_vars['params'], g_batch_stats=g_vars.get('batch_stats', {}),
        g_opt_state=nets.g_tx.init(g_vars['params']),
        d_params=d_vars['params'], d_batch_stats=d_vars.get('batch_stats', {}),
        d_opt_state=nets.d_tx.init(d_vars['params']))

  return init(g_key, d_key, step_key)


def step_key(state: TrainState, axis_name: str | None) -> jax.Array:
  """Dropout key for this step (and this device): never reused across steps or devices."""
  key = jax.random.fold_in(rnglib.wrap(state.rng), state.step)
  if axis_name is not None:
    key = jax.random.fold_in(key, lax.axis_index(axis_name))
  return key


def _apply(module, params, stats, x, **kw):
  """Applies ``module`` in training mode; returns (output, updated batch stats)."""
  out, upd = module.apply({'params': params, 'batch_stats': stats}, x, train=True,
                          mutable=['batch_stats'], **kw)
  return out, upd.get('batch_stats', stats)


def _pmean(tree, axis_name):
  # On one device the mean is the identity; XLA would still copy every gradient through
  # an all-reduce (~40 ms per step for U-Net-256's 218 MB of G gradients on CPU).
  if axis_name is None or lax.axis_size(axis_name) == 1:
    return tree
  return lax.pmean(tree, axis_name)


def train_step(state: TrainState, batch: Batch, *, nets: Networks,
               axis_name: str | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One D update then one G update. Pure; jit/pmap/shard_map it from outside."""
  x, y = batch['input'], batch['target']
  cond = nets.conditional_d

  # G forward once; its VJP serves G's update after D's.
  def g_forward(g_params):
    return _apply(nets.g, g_params, state.g_batch_stats, x,
                  rngs={'dropout': step_key(state, axis_name)})

  fake, g_vjp, g_stats = jax.vjp(g_forward, state.g_params, has_aux=True)

  # D update: (L(real) + L(fake)) / 2 on a detached fake.
  def d_loss_fn(d_params):
    fake_logits, stats = _apply(nets.d, d_params, state.d_batch_stats,
                                losses.d_input(x, lax.stop_gradient(fake), cond))
    real_logits, stats = _apply(nets.d, d_params, stats, losses.d_input(x, y, cond))
    real, fake_l = losses.d_loss_terms(real_logits, fake_logits, nets.gan_mode)
    loss = 0.5 * (real + fake_l)
    if nets.gan_mode == 'wgangp':  # + lambda_gp * (|grad D(x_hat)| - 1)^2; x_hat on the pairs.
      gp_key = jax.random.fold_in(step_key(state, axis_name), 1)  # Not the dropout key.
      alpha = jax.random.uniform(gp_key, (x.shape[0],))
      d_fn = lambda inp: _apply(nets.d, d_params, stats, inp)[0]  # noqa: E731
      loss = loss + losses.gradient_penalty(
          d_fn, losses.d_input(x, y, cond), losses.d_input(x, lax.stop_gradient(fake), cond),
          alpha, lambda_gp=nets.lambda_gp)
    return loss, (stats, real, fake_l)

  d_grads, (d_stats, d_real, d_fake) = jax.grad(d_loss_fn, has_aux=True)(state.d_params)
  d_grads = _pmean(d_grads, axis_name)
  d_updates, d_opt_state = nets.d_tx.update(d_grads, state.d_opt_state, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)

  # G update against the updated D: non-saturating GAN loss + lambda * L1.
  def g_loss_fn(fake):
    logits, _ = _apply(nets.d, d_params, d_stats, losses.d_input(x, fake, cond))
    gan = losses.g_gan_loss(logits, nets.gan_mode)
    l1 = losses.l1_loss(fake, y)
    return nets.lambda_gan * gan + nets.lambda_l1 * l1, (gan, l1)

  (g_loss, (g_gan, g_l1)), d_fake_grad = jax.value_and_grad(g_loss_fn, has_aux=True)(fake)
  (g_grads,) = g_vjp(d_fake_grad)
  g_grads = _pmean(g_grads, axis_name)
  g_updates, g_opt_state = nets.g_tx.update(g_grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)

  if not nets.sync_batch_stats:
    # Per-device statistics during the step; keep the replicas' running averages equal.
    g_stats, d_stats = _pmean((g_stats, d_stats), axis_name)

  new_state = state.replace(step=state.step + 1, g_params=g_params, g_batch_stats=g_stats,
                            g_opt_state=g_opt_state, d_params=d_params, d_batch_stats=d_stats,
                            d_opt_state=d_opt_state)
  metrics = {'d_loss': 0.5 * (d_real + d_fake), 'd_real': d_real, 'd_fake': d_fake,
             'g_gan': g_gan, 'g_l1': g_l1, 'g_loss': g_loss}
  return new_state, _pmean(metrics, axis_name)


def multi_step(state: TrainState, batches: Batch, *, nets: Networks,
               axis_name: str | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """Several train steps in one call: ``batches`` has a leading steps axis.

  Returns the metrics of every step, stacked on that axis.
  """
  body = functools.partial(train_step, nets=nets, axis_name=axis_name)
  # Unrolled: XLA:CPU runs convolutions inside while-loop bodies on a slow path (~10x).
  return lax.scan(body, state, batches, unroll=True)


# --- The model interface (p2p_jax.gan) -------------------------------------------------------

NAME = 'pix2pix'
PER_DEVICE_FIELDS: tuple[str, ...] = ()  # Everything is replicated.
METRICS = ('d_loss', 'd_real', 'd_fake', 'g_gan', 'g_l1', 'g_loss')


def check_image_size(config: ml_collections.ConfigDict, height: int, width: int | None = None,
                     what: str = 'image_size') -> None:
  """ConfigError naming the valid sizes when (height, width) does not fit the networks."""
  from p2p_jax.models import factory  # pylint: disable=import-outside-toplevel
  factory.check_image_size(config, height, width, what)


def build(config: ml_collections.ConfigDict, data, *, multi_device: bool = False) -> Networks:
  """``make_networks`` for ``data`` (a ``gan.DataInfo``)."""
  return make_networks(config, data.channels_out, data.steps_per_epoch,
                       multi_device=multi_device)


def init_state(nets: Networks, config: ml_collections.ConfigDict, data,
               rng: int | jax.Array, num_devices: int = 1) -> TrainState:
  del num_devices  # Nothing per device.
  s = config.image_size
  return create_train_state(nets, rng, (s, s, data.channels_in), data.channels_out)


# The state fields a translating generator needs (restored alone by p2p_jax.restore).
GENERATOR_FIELDS = ('g_params', 'g_batch_stats')


def generators(nets: Networks, fields: dict, data) -> dict[str, tuple]:
  """{name: (module, params, batch_stats, (input channels, output channels))} of the
  translating generators, from the restored ``GENERATOR_FIELDS``: pix2pix has one, 'G'."""
  return {'G': (nets.g, fields['g_params'], fields['g_batch_stats'],
                (data.channels_in, data.channels_out))}


def progress(m: dict[str, float]) -> str:
  """The training log line's losses."""
  return (f"d {m['d_loss']:.3f} (real {m['d_real']:.3f} fake {m['d_fake']:.3f}) | "
          f"g_gan {m['g_gan']:.3f} | l1 {m['g_l1']:.4f}")


def _count(tree) -> int:
  return int(sum(x.size for x in jax.tree.leaves(tree)))


def param_counts(state: TrainState) -> dict[str, int]:
  return {'G': _count(state.g_params), 'D': _count(state.d_params)}


def network_params(config: ml_collections.ConfigDict, data) -> list[tuple[str, PyTree]]:
  """(description, shape-only parameters) of G and D, for ``--mode=summary``."""
  nets = build(config, data)
  state = jax.eval_shape(lambda: init_state(nets, config, data, 0))
  m, ci, co = config.model, data.channels_in, data.channels_out
  d_in = ci + co if config.loss.conditional_d else co
  return [(f'Generator: U-Net, num_downs={m.num_downs}, ngf={m.ngf}, norm={m.g_norm}, '
           f'{ci}->{co} channels, {config.image_size}px', state.g_params),
          (f'Discriminator: {m.discriminator}, n_layers={m.n_layers}, ndf={m.ndf}, '
           f'norm={m.d_norm}, {d_in} input channels', state.d_params)]


def sample_grid(nets: Networks, state: TrainState, batch: Batch, key: jax.Array):
  """(uint8 image, tag): per row input | G(input) (paper mode, dropout key ``key``) |
  target."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from p2p_jax import images, inference  # pylint: disable=import-outside-toplevel
  generate = inference.make_generate_fn(nets.g, paper_mode=True)
  out = np.asarray(generate(state.g_params, state.g_batch_stats, batch['input'], key))
  return (images.grid([batch['input'], out, batch['target']]),
          'samples/input_output_target')
