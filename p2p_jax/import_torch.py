"""``--mode=import_torch``: a reference PyTorch generator -> a p2p_jax checkpoint.

  python -m p2p_jax.main --mode=import_torch --config=configs/facades.py --workdir=W \\
      --config.import_torch.path=latest_net_G.pth
  python -m p2p_jax.main --mode=import_torch --config=configs/cyclegan_horse2zebra.py \\
      --workdir=W --config.import_torch.path=horse2zebra.pth

Reads a generator saved by junyanz/pytorch-CycleGAN-and-pix2pix, recognises it from its
keys (``convert_torch.infer``), reads its depth, widths, norm and channels from the
weights, and writes ``W/checkpoints/0/`` holding a full train state at step 0, so that
``--mode=sample`` and ``--mode=evaluate`` use it unchanged and ``--mode=train`` on W
fine-tunes it:

* a U-Net (``*_net_G.pth``: ``unet_128`` / ``unet_256``, batch or instance norm) becomes a
  **pix2pix** checkpoint: the config of ``--config`` with ``model.generator='unet'``,
  ``num_downs``, ``ngf``, ``g_norm`` from the weights and
  ``model.dropout_placement='reference'`` (where the reference's U-Net has its dropout);
  the converted generator (weights and BatchNorm running statistics), a freshly
  initialised discriminator and Adam states;
* a ResNet (``*_net_G_A.pth``, or a released CycleGAN model such as ``horse2zebra.pth``:
  ``resnet_<n>blocks``, instance or no norm) becomes a **CycleGAN** checkpoint (``--config``
  must be a CycleGAN config): ``model.generator='resnet_<n>blocks'``, ``ngf``, ``g_norm``
  from the weights. ``import_torch.path`` translates ``import_torch.direction`` ('AtoB':
  it becomes G_A; 'BtoA': G_B, in the config's A/B); ``import_torch.path_b`` optionally
  holds the other direction's generator (``*_net_G_B.pth``). A generator not given is
  freshly initialised (a warning says so), as are both discriminators, the Adam states
  and the (empty) image pools of one device.

Anything wrong (an unreadable file, an unknown architecture, a layer whose shape does not
fit, a config of the other model, a workdir that already has checkpoints) raises one
``CheckpointError`` / ``ConfigError`` naming it, before anything is written. PyTorch is
needed only here.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections
from absl import logging

from p2p_jax import checkpoints, convert_torch, cyclegan, gan, pix2pix
from p2p_jax.errors import CheckpointError, ConfigError
from p2p_jax.models.factory import check_image_size

DIRECTIONS = ('AtoB', 'BtoA')
_OTHER = {'AtoB': 'BtoA', 'BtoA': 'AtoB'}


def imported_config(config: ml_collections.ConfigDict,
                    spec: convert_torch.UnetSpec | convert_torch.ResnetSpec
                    ) -> ml_collections.ConfigDict:
  """``config`` with the generator fields of the converted checkpoint."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.model.ngf = spec.ngf
  c.model.g_norm = spec.norm
  if isinstance(spec, convert_torch.ResnetSpec):
    c.model.generator = spec.name
    return c
  c.model.generator = 'unet'
  c.model.num_downs = spec.num_downs
  c.model.dropout_placement = 'reference'
  return c


def _options(config: ml_collections.ConfigDict) -> tuple[str, str, str]:
  it = config.get('import_torch', ml_collections.ConfigDict())
  path, path_b, direction = it.get('path', ''), it.get('path_b', ''), it.get('direction', 'AtoB')
  if direction not in DIRECTIONS:
    raise ConfigError(f"import_torch.direction must be 'AtoB' or 'BtoA' (the way "
                      f'import_torch.path translates), got {direction!r}.')
  return path, path_b, direction


def _check_empty(workdir: str) -> str:
  ckpt_dir = checkpoints.checkpoint_dir(workdir)
  if os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
    raise CheckpointError(f'{ckpt_dir} already holds checkpoints; import into a new --workdir.')
  return ckpt_dir


def _save(workdir: str, config: ml_collections.ConfigDict, state: Any,
          channels: tuple[int, int]) -> None:
  ckpt = checkpoints.Checkpointer(workdir, max_to_keep=config.max_checkpoints_to_keep)
  try:
    ckpt.save(0, state, config, channels)
    ckpt.wait()
  finally:
    ckpt.close()


def _convert(state_dict, spec, expected, path: str) -> dict[str, Any]:
  """The converted variables as jax arrays; CheckpointError names the first misfit."""
  out = convert_torch.to_flax(state_dict, convert_torch.layout(spec), spec.norm, expected,
                              what=os.path.basename(path))
  return jax.tree.map(jax.numpy.asarray, out)


def _count(tree) -> int:
  return sum(x.size for x in jax.tree.leaves(tree))


def import_generator(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Converts ``config.import_torch.path`` (and ``path_b``) into a step-0 checkpoint in
  ``workdir``; returns the checkpoint directory. Raises before writing anything on any
  mismatch."""
  path, path_b, direction = _options(config)
  state_dict = convert_torch.load_state_dict(path)
  spec = convert_torch.infer(state_dict)
  if isinstance(spec, convert_torch.ResnetSpec):
    return _import_cyclegan(config, workdir, {direction: (path, state_dict, spec)}, path_b)
  if path_b or direction != 'AtoB':
    raise ConfigError(f'{os.path.basename(path)} is a pix2pix U-Net ({spec.name}), which '
                      'imports alone: import_torch.path_b and direction are for CycleGAN '
                      "ResNet generators (pix2pix's direction is the config's data.direction).")
  return _import_pix2pix(config, workdir, path, state_dict, spec)


def _import_pix2pix(config, workdir, path, state_dict, spec: convert_torch.UnetSpec) -> str:
  if gan.model_name(config) != 'pix2pix':
    raise ConfigError(f'{os.path.basename(path)} is a pix2pix U-Net ({spec.name}): import it '
                      'with a pix2pix config (e.g. --config=configs/facades.py), not a '
                      f'{gan.model_name(config)} one.')
  config = imported_config(config, spec)
  check_image_size(config, config.image_size)
  ckpt_dir = _check_empty(workdir)

  nets = pix2pix.make_networks(config, spec.output_nc)
  s = config.image_size
  state = pix2pix.create_train_state(nets, config.seed, (s, s, spec.input_nc), spec.output_nc)
  g_vars = _convert(state_dict, spec,
                    {'params': state.g_params, 'batch_stats': state.g_batch_stats}, path)
  g_params, g_stats = g_vars['params'], g_vars.get('batch_stats', {})
  state = state.replace(g_params=g_params, g_batch_stats=g_stats,
                        g_opt_state=nets.g_tx.init(g_params))
  _save(workdir, config, state, (spec.input_nc, spec.output_nc))
  n_params = _count(g_params)
  logging.info('imported %s: %s, ngf %d, %s norm, %d -> %d channels, %d parameters',
               path, spec.name, spec.ngf, spec.norm, spec.input_nc, spec.output_nc, n_params)
  print(f'imported {spec.name} ({spec.norm} norm, {spec.input_nc} -> {spec.output_nc} '
        f'channels, {n_params:,} parameters; discriminator freshly initialised) into '
        f'{ckpt_dir}/0', flush=True)
  return ckpt_dir


def _import_cyclegan(config, workdir, files: dict[str, tuple[str, Any, Any]],
                     path_b: str) -> str:
  """``files``: direction -> (path, state dict, spec); ``path_b`` the other direction."""
  (direction, (path, _, spec)), = files.items()
  name = os.path.basename(path)
  if gan.model_name(config) != 'cyclegan':
    raise ConfigError(f'{name} is a CycleGAN ResNet generator ({spec.name}): import it with a '
                      'CycleGAN config (e.g. --config=configs/cyclegan_horse2zebra.py), not a '
                      f'{gan.model_name(config)} one.')
  if path_b:
    sd_b = convert_torch.load_state_dict(path_b)
    spec_b = convert_torch.infer(sd_b)
    if not isinstance(spec_b, convert_torch.ResnetSpec) or (
        spec_b.n_blocks, spec_b.ngf, spec_b.norm, spec_b.input_nc, spec_b.output_nc) != (
            spec.n_blocks, spec.ngf, spec.norm, spec.output_nc, spec.input_nc):
      raise CheckpointError(
          f'{os.path.basename(path_b)} ({_describe(spec_b)}) is not the reverse of {name} '
          f'({_describe(spec)}): the two CycleGAN generators share blocks, ngf and norm, '
          'with input and output channels swapped.')
    files[_OTHER[direction]] = (path_b, sd_b, spec_b)
  for p, _, s in files.values():
    if s.norm == 'batch':
      raise CheckpointError(
          f"{os.path.basename(p)} is a {s.name} with batch norm; p2p_jax's CycleGAN has "
          "instance norm (the reference's) or none, so it cannot import this generator.")
  if any(s.dropout for _, _, s in files.values()):
    logging.warning('%s was trained with dropout in its ResNet blocks (use_dropout); '
                    "p2p_jax's ResNet generator has none: it translates as the reference's "
                    'eval mode does, and fine-tuning trains without dropout.', name)

  config = imported_config(config, spec)
  # G_A: A -> B. The file translating BtoA has A's channels as its output.
  ca, cb = ((spec.input_nc, spec.output_nc) if direction == 'AtoB'
            else (spec.output_nc, spec.input_nc))
  s = config.image_size
  cyclegan.check_image_size(config, s)
  ckpt_dir = _check_empty(workdir)

  nets = cyclegan.make_networks(config, ca, cb)
  state = cyclegan.create_train_state(nets, config.seed, (s, s, ca), (s, s, cb), num_devices=1)
  g_params = dict(state.g_params)
  for d, (p, sd, sp) in files.items():
    _, k = cyclegan.generator_for(nets, d)
    g_params[k] = _convert(sd, sp, {'params': state.g_params[k]}, p)['params']
  state = state.replace(g_params=g_params, g_opt_state=nets.g_tx.init(g_params))
  _save(workdir, config, state, (ca, cb))

  label = {'AtoB': 'G_A (A -> B)', 'BtoA': 'G_B (B -> A)'}
  key = {'AtoB': 'g_a', 'BtoA': 'g_b'}
  missing = [d for d in DIRECTIONS if d not in files]
  for d in missing:
    logging.warning('only %s was imported: %s is freshly initialised, so sampling %s and the '
                    'reconstructions use an untrained generator (import its file with '
                    '--config.import_torch.path_b=...).', label[_OTHER[d]], label[d], d)
  imported = []
  for d, (p, _, sp) in files.items():
    logging.info('imported %s as %s: %s', p, label[d], _describe(sp))
    imported.append(f'{label[d]} from {os.path.basename(p)} '
                    f'({_count(g_params[key[d]]):,} parameters)')
  fresh = ''.join(f'{label[d]}, ' for d in missing)
  print(f'imported {spec.name} ({spec.norm} norm): {"; ".join(imported)}; freshly '
        f'initialised: {fresh}both discriminators; into {ckpt_dir}/0', flush=True)
  return ckpt_dir


def _describe(spec) -> str:
  return (f'{spec.name}, ngf {spec.ngf}, {spec.norm} norm, {spec.input_nc} -> '
          f'{spec.output_nc} channels')
