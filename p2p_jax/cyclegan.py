"""CycleGAN (Zhu et al. 2017, "Unpaired Image-to-Image Translation using Cycle-Consistent
Adversarial Networks"), as the reference implementation trains it. No TensorFlow.

Two generators, ``G_A: A -> B`` and ``G_B: B -> A`` (ResNet generators), and two 70x70
PatchGAN discriminators with instance norm: ``D_A`` tells real B from ``G_A``'s fakes,
``D_B`` real A from ``G_B``'s. One training iteration, from one A image and one
(independent) B image:

1. Forward both cycles: ``fake_B = G_A(A)``, ``rec_A = G_B(fake_B)``, ``fake_A = G_B(B)``,
   ``rec_B = G_A(fake_A)``.
2. One Adam step over both generators on the sum of (``losses.cyclegan_g_loss``)
   LSGAN ``(D_A(fake_B) - 1)^2 + (D_B(fake_A) - 1)^2``, cycle L1 ``lambda_A |rec_A - A|``
   ``+ lambda_B |rec_B - B|`` (lambda 10) and identity ``lambda_B * lambda_identity |G_A(B)
   - B| + lambda_A * lambda_identity |G_B(A) - A|`` (lambda_identity 0.5; 0 turns it off).
   Both generators get gradients from both cycles.
3. One Adam step over both discriminators: ``D_A`` on (real B, pool(fake_B)), ``D_B`` on
   (real A, pool(fake_A)), each ``0.5 * (MSE(D(real), 1) + MSE(D(fake), 0))``. The fakes
   are those of step 1, from the generators before step 2's update, as in the reference.
   Each direction has its image pool (``p2p_jax.image_pool``) of 50 past fakes.

Under data parallelism ``axis_name`` names the device axis: gradients and metrics are
averaged over it (never the parameters after the update), and each device keeps its own
pools. The pools therefore carry a leading device axis in the train state
(``PER_DEVICE_FIELDS``): [num_devices, ...] for the whole state, [1, ...] inside the
per-device step.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax import lax

from p2p_jax import image_pool, losses, rng as rnglib, schedules
from p2p_jax.errors import ConfigError
from p2p_jax.models.discriminators import NLayerDiscriminator
from p2p_jax.models.factory import compute_dtype
from p2p_jax.models.resnet import ResnetGenerator

PyTree = Any
Batch = dict[str, jax.Array]  # {'A': [B,H,W,C_A], 'B': [B,H,W,C_B]} in [-1, 1], unpaired.
AXIS = 'batch'
# TrainState fields that hold one entry per device (leading axis), not one replicated copy.
PER_DEVICE_FIELDS = ('pools',)
METRICS = ('d_a', 'g_a', 'cycle_a', 'idt_a', 'd_b', 'g_b', 'cycle_b', 'idt_b', 'g_loss',
           'd_loss')


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: number of completed iterations.
  rng: jax.Array  # uint32 raw key data; per-step (and per-device) keys are folded from it.
  g_params: PyTree  # {'g_a': G_A's params, 'g_b': G_B's}
  g_opt_state: PyTree  # One Adam over both generators.
  d_params: PyTree  # {'d_a': D_A's params, 'd_b': D_B's}
  d_opt_state: PyTree  # One Adam over both discriminators.
  pools: PyTree  # {'fake_a': ImagePool, 'fake_b': ImagePool}, leading device axis.


@dataclasses.dataclass(frozen=True)
class Networks:
  """The static half of training: modules, optimisers and loss settings."""

  g_a: nn.Module  # A -> B
  g_b: nn.Module  # B -> A
  d_a: nn.Module  # judges B images
  d_b: nn.Module  # judges A images
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  gan_mode: str = 'lsgan'
  lambda_a: float = 10.0
  lambda_b: float = 10.0
  lambda_identity: float = 0.5
  pool_size: int = 50


# --- Networks --------------------------------------------------------------------------------

def resnet_blocks(name: str) -> int:
  """'resnet_9blocks' -> 9 (the reference's ``netG`` names)."""
  m = re.fullmatch(r'resnet_(\d+)blocks', name)
  if not m:
    raise ConfigError(f"CycleGAN's model.generator must be 'resnet_<n>blocks' (e.g. "
                      f"'resnet_9blocks' for 256 px, 'resnet_6blocks' for 128), got {name!r}.")
  return int(m.group(1))


def check_config(config: ml_collections.ConfigDict, channels_a: int, channels_b: int) -> None:
  m, loss = config.model, config.loss
  resnet_blocks(m.generator)
  for field in ('g_norm', 'd_norm'):
    if m[field] not in ('instance', 'none'):
      raise ConfigError(f"CycleGAN's model.{field} must be 'instance' (the reference's) or "
                        f"'none', got {m[field]!r}.")
  if m.discriminator != 'patch':
    raise ConfigError(f"CycleGAN's model.discriminator must be 'patch', got {m.discriminator!r}.")
  if loss.lambda_identity > 0 and channels_a != channels_b:
    raise ConfigError(f'The identity loss needs as many channels in A ({channels_a}) as in B '
                      f'({channels_b}); set --config.loss.lambda_identity=0.')
  if loss.pool_size < 0:
    raise ConfigError(f'loss.pool_size must be >= 0, got {loss.pool_size}.')
  losses.check_gan_mode(loss.gan_mode)


def check_image_size(config: ml_collections.ConfigDict, height: int, width: int | None = None,
                     what: str = 'image_size') -> None:
  """ConfigError unless both sides are multiples of 4 (two stride-2 levels) and large
  enough for the PatchGAN (``3 * 2**n_layers``: 24 px for the 70x70 one)."""
  width = height if width is None else width
  smallest = max(8, -(-3 * 2 ** config.model.n_layers // 4) * 4)
  for side in (height, width):
    if side < smallest or side % 4:
      raise ConfigError(f'{what} {height}x{width} does not fit CycleGAN\'s networks: each side '
                        f'must be a multiple of 4 and at least {smallest} (e.g. {smallest}, '
                        f'{smallest + 4}, ..., 128, 256).')


def make_networks(config: ml_collections.ConfigDict, channels_a: int, channels_b: int,
                  steps_per_epoch: int | None = None) -> Networks:
  """Modules, optimisers and loss weights from the config (``model``, ``loss``, ``optim``).

  The lr schedule is the reference's ``linear`` policy in epochs
  (``p2p_jax.schedules``: ``optim.lr_constant_epochs`` then ``optim.lr_decay_epochs``),
  turned into steps by ``steps_per_epoch`` (max(|A|, |B|) // batch); None: constant lr,
  for networks restored to translate."""
  check_config(config, channels_a, channels_b)
  m = config.model
  blocks = resnet_blocks(m.generator)
  dtype = compute_dtype(config)
  gen = lambda out: ResnetGenerator(output_channels=out, num_blocks=blocks, ngf=m.ngf,  # noqa: E731
                                    norm=m.g_norm, init_std=m.init_std, dtype=dtype)
  dis = lambda: NLayerDiscriminator(ndf=m.ndf, n_layers=m.n_layers, norm=m.d_norm,  # noqa: E731
                                    init_std=m.init_std, dtype=dtype)
  lr = schedules.learning_rate_fn(config.optim, steps_per_epoch)
  tx = lambda: optax.adam(lr, b1=config.optim.b1, b2=config.optim.b2)  # noqa: E731
  loss = config.loss
  return Networks(g_a=gen(channels_b), g_b=gen(channels_a), d_a=dis(), d_b=dis(),
                  g_tx=tx(), d_tx=tx(), gan_mode=loss.gan_mode,
                  lambda_a=float(loss.lambda_a), lambda_b=float(loss.lambda_b),
                  lambda_identity=float(loss.lambda_identity), pool_size=int(loss.pool_size))


def create_train_state(nets: Networks, rng: int | jax.Array, shape_a: tuple[int, int, int],
                       shape_b: tuple[int, int, int], num_devices: int = 1) -> TrainState:
  """Initialises the four networks from four different keys (weights ~ N(0, init_std)),
  both Adam states and empty pools (one pair per device) for [H, W, C] images of A and B."""
  keys = jax.random.split(rnglib.make_key(rng), 5)
  a = jnp.zeros((1, *shape_a), jnp.float32)
  b = jnp.zeros((1, *shape_b), jnp.float32)

  @jax.jit
  def init(keys):
    init_p = lambda net, key, x: net.init({'params': key}, x, train=False)['params']  # noqa: E731
    g = {'g_a': init_p(nets.g_a, keys[0], a), 'g_b': init_p(nets.g_b, keys[1], b)}
    d = {'d_a': init_p(nets.d_a, keys[2], b), 'd_b': init_p(nets.d_b, keys[3], a)}
    per_device = lambda shape: jax.tree.map(  # noqa: E731
        lambda x: jnp.broadcast_to(x, (num_devices, *x.shape)),
        image_pool.init(nets.pool_size, shape))
    return TrainState(step=jnp.zeros((), jnp.int32), rng=jax.random.key_data(keys[4]),
                      g_params=g, g_opt_state=nets.g_tx.init(g),
                      d_params=d, d_opt_state=nets.d_tx.init(d),
                      pools={'fake_a': per_device(shape_a), 'fake_b': per_device(shape_b)})

  return init(keys)


# --- The step -------------------------------------------------------------------------------

def step_key(state: TrainState, axis_name: str | None) -> jax.Array:
  """This step's key on this device: never reused across steps or devices."""
  key = jax.random.fold_in(rnglib.wrap(state.rng), state.step)
  if axis_name is not None:
    key = jax.random.fold_in(key, lax.axis_index(axis_name))
  return key


def _pmean(tree, axis_name):
  if axis_name is None or lax.axis_size(axis_name) == 1:
    return tree
  return lax.pmean(tree, axis_name)


def _apply(net: nn.Module, params, x):
  return net.apply({'params': params}, x, train=True)


def generator_loss(g_params, d_params, real_a, real_b, nets: Networks):
  """(total, (terms, fake_a, fake_b)) for both generators against fixed discriminators."""
  g_a = functools.partial(_apply, nets.g_a, g_params['g_a'])
  g_b = functools.partial(_apply, nets.g_b, g_params['g_b'])
  fake_b = g_a(real_a)
  rec_a = g_b(fake_b)
  fake_a = g_b(real_b)
  rec_b = g_a(fake_a)
  identity = nets.lambda_identity > 0
  total, terms = losses.cyclegan_g_loss(
      d_a_fake_b=_apply(nets.d_a, d_params['d_a'], fake_b),
      d_b_fake_a=_apply(nets.d_b, d_params['d_b'], fake_a),
      real_a=real_a, rec_a=rec_a, real_b=real_b, rec_b=rec_b,
      idt_a=g_a(real_b) if identity else None, idt_b=g_b(real_a) if identity else None,
      lambda_a=nets.lambda_a, lambda_b=nets.lambda_b,
      lambda_identity=nets.lambda_identity, mode=nets.gan_mode)
  return total, (terms, fake_a, fake_b)


def discriminator_loss(d_params, real_a, real_b, pooled_fake_a, pooled_fake_b,
                       nets: Networks):
  """(D_A's + D_B's loss, (d_a, d_b)); each already halved."""
  d_a = losses.d_loss(_apply(nets.d_a, d_params['d_a'], real_b),
                      _apply(nets.d_a, d_params['d_a'], pooled_fake_b), nets.gan_mode)
  d_b = losses.d_loss(_apply(nets.d_b, d_params['d_b'], real_a),
                      _apply(nets.d_b, d_params['d_b'], pooled_fake_a), nets.gan_mode)
  return d_a + d_b, (d_a, d_b)


def train_step(state: TrainState, batch: Batch, *, nets: Networks,
               axis_name: str | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One CycleGAN iteration (G step, then D step on pre-update fakes). Pure; map it with
  jit / pmap / shard_map from outside. ``state.pools`` holds this device's pools ([1, ...])."""
  real_a, real_b = batch['A'], batch['B']

  (g_loss, (terms, fake_a, fake_b)), g_grads = jax.value_and_grad(
      generator_loss, has_aux=True)(state.g_params, state.d_params, real_a, real_b, nets)
  g_grads = _pmean(g_grads, axis_name)
  g_updates, g_opt_state = nets.g_tx.update(g_grads, state.g_opt_state, state.g_params)
  g_params = optax.apply_updates(state.g_params, g_updates)

  key = step_key(state, axis_name)
  pools = jax.tree.map(lambda x: x[0], state.pools)
  pool_a, pooled_a = image_pool.query(pools['fake_a'], fake_a, jax.random.fold_in(key, 0))
  pool_b, pooled_b = image_pool.query(pools['fake_b'], fake_b, jax.random.fold_in(key, 1))

  (d_loss, (d_a, d_b)), d_grads = jax.value_and_grad(discriminator_loss, has_aux=True)(
      state.d_params, real_a, real_b, pooled_a, pooled_b, nets)
  d_grads = _pmean(d_grads, axis_name)
  d_updates, d_opt_state = nets.d_tx.update(d_grads, state.d_opt_state, state.d_params)
  d_params = optax.apply_updates(state.d_params, d_updates)

  new_pools = jax.tree.map(lambda x: x[None], {'fake_a': pool_a, 'fake_b': pool_b})
  new_state = state.replace(step=state.step + 1, g_params=g_params, g_opt_state=g_opt_state,
                            d_params=d_params, d_opt_state=d_opt_state, pools=new_pools)
  metrics = {**terms, 'd_a': d_a, 'd_b': d_b, 'g_loss': g_loss, 'd_loss': d_loss}
  return new_state, _pmean(metrics, axis_name)


def multi_step(state: TrainState, batches: Batch, *, nets: Networks,
               axis_name: str | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """Several iterations in one call: ``batches`` has a leading steps axis."""
  body = functools.partial(train_step, nets=nets, axis_name=axis_name)
  return lax.scan(body, state, batches, unroll=True)


# --- Translation ----------------------------------------------------------------------------

DIRECTIONS = ('AtoB', 'BtoA')


def generator_for(nets: Networks, direction: str) -> tuple[nn.Module, str]:
  """(module, its key in ``TrainState.g_params``) translating in ``direction``."""
  if direction == 'AtoB':
    return nets.g_a, 'g_a'
  if direction == 'BtoA':
    return nets.g_b, 'g_b'
  raise ConfigError(f'direction must be one of {DIRECTIONS}, got {direction!r}.')


@functools.lru_cache(maxsize=16)
def make_translate_fn(nets: Networks, direction: str):
  """Jitted ``translate(g_params, images) -> (translated, reconstructed)``: G(x) and the
  other generator's reconstruction of x from it. ``g_params`` is ``TrainState.g_params``."""
  fwd, fwd_key = generator_for(nets, direction)
  back, back_key = generator_for(nets, 'BtoA' if direction == 'AtoB' else 'AtoB')

  @jax.jit
  def translate(g_params, x):
    y = _apply(fwd, g_params[fwd_key], x)
    return y, _apply(back, g_params[back_key], y)

  return translate


# --- The model interface (p2p_jax.gan) -------------------------------------------------------

NAME = 'cyclegan'


def build(config: ml_collections.ConfigDict, data, *, multi_device: bool = False) -> Networks:
  """``make_networks`` for ``data`` (a ``gan.DataInfo``: channels of A and B, epoch length).
  Instance norm needs nothing synchronised across devices, hence no ``multi_device``
  difference."""
  del multi_device
  return make_networks(config, data.channels_in, data.channels_out, data.steps_per_epoch)


def init_state(nets: Networks, config: ml_collections.ConfigDict, data,
               rng: int | jax.Array, num_devices: int = 1) -> TrainState:
  s = config.image_size
  return create_train_state(nets, rng, (s, s, data.channels_in), (s, s, data.channels_out),
                            num_devices)


# The state fields the translating generators need (restored alone by p2p_jax.restore).
GENERATOR_FIELDS = ('g_params',)


def generators(nets: Networks, fields: dict, data) -> dict[str, tuple]:
  """{direction: (module, params, batch_stats, (input channels, output channels))}:
  'AtoB' is G_A, 'BtoA' G_B (instance norm: no statistics), from the restored
  ``GENERATOR_FIELDS``."""
  g = fields['g_params']
  ca, cb = data.channels_in, data.channels_out
  return {'AtoB': (nets.g_a, g['g_a'], {}, (ca, cb)),
          'BtoA': (nets.g_b, g['g_b'], {}, (cb, ca))}


def progress(m: dict[str, float]) -> str:
  """The training log line's losses."""
  return (f"D_A {m['d_a']:.3f} G_A {m['g_a']:.3f} cyc_A {m['cycle_a']:.3f} "
          f"idt_A {m['idt_a']:.3f} | D_B {m['d_b']:.3f} G_B {m['g_b']:.3f} "
          f"cyc_B {m['cycle_b']:.3f} idt_B {m['idt_b']:.3f}")


def _count(tree) -> int:
  return int(sum(x.size for x in jax.tree.leaves(tree)))


def param_counts(state: TrainState) -> dict[str, int]:
  return {'G_A': _count(state.g_params['g_a']), 'G_B': _count(state.g_params['g_b']),
          'D_A': _count(state.d_params['d_a']), 'D_B': _count(state.d_params['d_b'])}


def network_params(config: ml_collections.ConfigDict, data) -> list[tuple[str, PyTree]]:
  """(description, shape-only parameters) of the four networks, for ``--mode=summary``."""
  nets = build(config, data)
  s, m = config.image_size, config.model
  state = jax.eval_shape(lambda: init_state(nets, config, data, 0))
  ca, cb = data.channels_in, data.channels_out
  g = (f'ResNet generator, {resnet_blocks(m.generator)} blocks, ngf={m.ngf}, '
       f'norm={m.g_norm}, {s}px')
  d = f'PatchGAN, n_layers={m.n_layers}, ndf={m.ndf}, norm={m.d_norm}'
  return [(f'G_A (A -> B): {g}, {ca}->{cb} channels', state.g_params['g_a']),
          (f'G_B (B -> A): {g}, {cb}->{ca} channels', state.g_params['g_b']),
          (f'D_A (judges B): {d}, {cb} input channels', state.d_params['d_a']),
          (f'D_B (judges A): {d}, {ca} input channels', state.d_params['d_b'])]


def sample_grid(nets: Networks, state: TrainState, batch: Batch, key: jax.Array):
  """(uint8 image, tag): per row real A | G_A(A) | G_B(G_A(A)) | real B | G_B(B) |
  G_A(G_B(B)). ``state`` is one (host or replicated) copy; ``key`` is unused (no noise)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from p2p_jax import images  # pylint: disable=import-outside-toplevel
  del key
  a, b = batch['A'], batch['B']
  n = min(len(a), len(b))
  fake_b, rec_a = make_translate_fn(nets, 'AtoB')(state.g_params, a[:n])
  fake_a, rec_b = make_translate_fn(nets, 'BtoA')(state.g_params, b[:n])
  cols = [a[:n], fake_b, rec_a, b[:n], fake_a, rec_b]
  return images.grid([np.asarray(c) for c in cols]), 'samples/A_fakeB_recA_B_fakeA_recB'
