"""A trained generator from a workdir: the run's config and the generator's weights.

The checkpoint alone defines the model (see :mod:`p2p_jax.checkpoints`); a command-line
config only adds what may differ on the machine that samples or evaluates
(:func:`merge_config`). Used by ``--mode=sample``, ``--mode=evaluate``,
``--mode=train_segmenter`` and :class:`p2p_jax.inference.Translator`. No TensorFlow.
"""

from __future__ import annotations

import dataclasses

import jax
import ml_collections
from absl import logging

from p2p_jax import checkpoints
from p2p_jax.errors import ConfigError
from p2p_jax.rng import make_key
from p2p_jax.pix2pix import create_train_state, make_networks

# Data fields that are paths on the machine that samples (taken from --config when set).
PATH_FIELDS = ('data_dir', 'manual_dir', 'data_path')

# The ``sample`` section of configs saved before it existed.
DEFAULT_SAMPLE = dict(step=-1, input_dir='', image_size=-1, num_samples=1, paper_mode=True,
                      seed=0, max_images=-1, output_dir='')


def merge_config(saved: ml_collections.ConfigDict,
                 cli: ml_collections.ConfigDict | None) -> ml_collections.ConfigDict:
  """The configuration for sampling / evaluating a checkpoint.

  Everything (model, loss, image_size, data set and direction, ...) comes from the
  checkpoint's stored config ``saved``, except, from the command line's ``cli``:

  * the whole ``sample`` section (and the ``fcn`` section, if ``cli`` has one);
  * ``data.data_dir``, ``data.manual_dir`` and ``data.data_path`` when set (non-empty):
    paths may differ on the machine that samples. Empty ones keep the checkpoint's.
  """
  merged = ml_collections.ConfigDict(saved.to_dict())
  if cli is not None:
    if 'sample' in cli:
      merged.sample = ml_collections.ConfigDict(cli.sample.to_dict())
    if 'fcn' in cli:
      merged.fcn = ml_collections.ConfigDict(cli.fcn.to_dict())
    if 'data' in cli:
      for k in PATH_FIELDS:
        v = cli.data.get(k, '')
        if v:
          merged.data[k] = v
  if 'sample' not in merged:
    merged.sample = ml_collections.ConfigDict(DEFAULT_SAMPLE)
  for k, v in DEFAULT_SAMPLE.items():
    if k not in merged.sample:
      merged.sample[k] = v
  return merged


def workdir_config(cli: ml_collections.ConfigDict | None, workdir: str,
                   step: int | None = None) -> tuple[ml_collections.ConfigDict, int,
                                                     tuple[int, int]]:
  """(merged config, checkpoint step, (input channels, output channels)) of a workdir's
  checkpoint. ``step`` None: ``cli.sample.step`` (-1 = latest)."""
  if step is None:
    step = int(cli.sample.get('step', -1)) if cli is not None and 'sample' in cli else -1
  ckpt = checkpoints.Checkpointer(workdir, create=False)
  try:
    step, saved, channels = ckpt.restore_meta(step)
  finally:
    ckpt.close()
  return merge_config(saved, cli), step, channels


def sample_batch_size(config: ml_collections.ConfigDict) -> int:
  """Images per batch when sampling or evaluating (``sample.batch_size``, default 1)."""
  bs = int(config.sample.get('batch_size', 1)) if 'sample' in config else 1
  if bs < 1:
    raise ConfigError(f'sample.batch_size must be >= 1, got {bs}.')
  return bs


@dataclasses.dataclass
class Restored:
  """The generator of one checkpoint."""

  config: ml_collections.ConfigDict  # Merged (see merge_config).
  step: int
  channels: tuple[int, int]  # (input, output) channels.
  generator: object  # Flax module.
  params: object
  batch_stats: object
  workdir: str


def restore_generator(cli: ml_collections.ConfigDict | None, workdir: str,
                      step: int | None = None) -> Restored:
  """Restores the generator of ``workdir``'s checkpoint (``step``; None: ``sample.step``
  of ``cli``, the latest if -1)."""
  config, step, channels = workdir_config(cli, workdir, step)
  if config.model.get('name', 'pix2pix') != 'pix2pix':
    raise ConfigError(f'{workdir} holds a {config.model.name} checkpoint; --mode=sample and '
                      '--mode=evaluate read pix2pix checkpoints only so far (CycleGAN '
                      'training writes its sample grids to WORKDIR/samples/).')
  nets = make_networks(config, channels[1])
  s = config.image_size
  abstract = jax.eval_shape(lambda: create_train_state(nets, make_key(0),
                                                       (s, s, channels[0]), channels[1]))
  ckpt = checkpoints.Checkpointer(workdir, create=False)
  try:
    state = ckpt.restore_state(abstract, step)
  finally:
    ckpt.close()
  logging.info('restored step %d from %s (%s -> %s, %d px)', step, ckpt.directory,
               config.data.dataset, config.data.direction, config.image_size)
  return Restored(config, step, tuple(channels), nets.g, state.g_params, state.g_batch_stats,
                  workdir)
