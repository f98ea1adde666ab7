"""``--mode=import_torch``: a reference PyTorch generator -> a p2p_jax checkpoint.

  python -m p2p_jax.main --mode=import_torch --config=configs/facades.py --workdir=W \\
      --config.import_torch.path=latest_net_G.pth

Reads a generator saved by junyanz/pytorch-CycleGAN-and-pix2pix (``*_net_G.pth``: its
``unet_128`` or ``unet_256``, batch or instance norm), reads its depth, widths, norm and
channels from the weights, and writes ``W/checkpoints/0/`` holding

* the config of ``--config`` with the model fields set to the checkpoint's
  (``model.generator='unet'``, ``num_downs``, ``ngf``, ``g_norm``) and
  ``model.dropout_placement='reference'`` (where the reference's U-Net has its dropout);
* a full train state at step 0: the converted generator (weights and BatchNorm running
  statistics), and a freshly initialised discriminator and Adam states (the reference's
  test-time checkpoints hold no discriminator). So ``--mode=sample`` and
  ``--mode=evaluate`` use it unchanged, and ``--mode=train`` on W fine-tunes it.

Anything wrong (an unreadable file, an unknown architecture, a layer whose shape does not
fit, a workdir that already has checkpoints) raises one ``CheckpointError`` /
``ConfigError`` naming it, before anything is written. PyTorch is needed only here.
"""

from __future__ import annotations

import os

import jax
import ml_collections
from absl import logging

from p2p_jax import checkpoints, convert_torch
from p2p_jax.errors import CheckpointError
from p2p_jax.models.factory import check_image_size
from p2p_jax.pix2pix import create_train_state, make_networks


def imported_config(config: ml_collections.ConfigDict,
                    spec: convert_torch.UnetSpec) -> ml_collections.ConfigDict:
  """``config`` with the generator fields of the converted checkpoint."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.model.generator = 'unet'
  c.model.num_downs = spec.num_downs
  c.model.ngf = spec.ngf
  c.model.g_norm = spec.norm
  c.model.dropout_placement = 'reference'
  return c


def import_generator(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Converts ``config.import_torch.path`` into a step-0 checkpoint in ``workdir``.

  Returns the checkpoint directory. Raises before writing anything on any mismatch.
  """
  path = config.import_torch.path if 'import_torch' in config else ''
  state_dict = convert_torch.load_state_dict(path)
  spec = convert_torch.infer_unet(state_dict)
  config = imported_config(config, spec)
  check_image_size(config, config.image_size)
  ckpt_dir = checkpoints.checkpoint_dir(workdir)
  if os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir):
    raise CheckpointError(f'{ckpt_dir} already holds checkpoints; import into a new --workdir.')

  nets = make_networks(config, spec.output_nc)
  s = config.image_size
  state = create_train_state(nets, config.seed, (s, s, spec.input_nc), spec.output_nc)
  expected = {'params': state.g_params, 'batch_stats': state.g_batch_stats}
  g_vars = convert_torch.to_flax(state_dict, convert_torch.unet_layout(spec.num_downs, spec.norm),
                                 spec.norm, expected, what=os.path.basename(path))
  g_params = jax.tree.map(jax.numpy.asarray, g_vars['params'])
  g_stats = jax.tree.map(jax.numpy.asarray, g_vars.get('batch_stats', {}))
  state = state.replace(g_params=g_params, g_batch_stats=g_stats,
                        g_opt_state=nets.g_tx.init(g_params))

  ckpt = checkpoints.Checkpointer(workdir, max_to_keep=config.max_checkpoints_to_keep)
  try:
    ckpt.save(0, state, config, (spec.input_nc, spec.output_nc))
    ckpt.wait()
  finally:
    ckpt.close()
  n_params = sum(x.size for x in jax.tree.leaves(g_params))
  logging.info('imported %s: %s, ngf %d, %s norm, %d -> %d channels, %d parameters',
               path, spec.name, spec.ngf, spec.norm, spec.input_nc, spec.output_nc, n_params)
  print(f'imported {spec.name} ({spec.norm} norm, {spec.input_nc} -> {spec.output_nc} '
        f'channels, {n_params:,} parameters; discriminator freshly initialised) into '
        f'{ckpt_dir}/0', flush=True)
  return ckpt_dir
