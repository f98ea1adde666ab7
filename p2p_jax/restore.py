"""Trained generators from a workdir: the run's config and the generators' weights.

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

from p2p_jax import checkpoints, gan
from p2p_jax.errors import ConfigError
from p2p_jax.rng import make_key

# Data fields that are paths on the machine that samples (taken from --config when set).
PATH_FIELDS = ('data_dir', 'manual_dir', 'data_path')

SAMPLE_DIRECTIONS = ('AtoB', 'BtoA', 'both')

# The ``sample`` section of configs saved before it existed.
DEFAULT_SAMPLE = dict(step=-1, input_dir='', image_size=-1, num_samples=1, paper_mode=True,
                      seed=0, max_images=-1, output_dir='', direction='both')


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
  """One translating generator of a checkpoint."""

  config: ml_collections.ConfigDict  # Merged (see merge_config).
  step: int
  channels: tuple[int, int]  # (input, output) channels of this generator.
  generator: object  # Flax module.
  params: object
  batch_stats: object
  workdir: str
  name: str = 'G'  # pix2pix: 'G'; CycleGAN: the direction, 'AtoB' (G_A) or 'BtoA' (G_B).
  # CycleGAN: the generator translating back (for reconstructions).
  inverse: 'Restored | None' = dataclasses.field(default=None, repr=False, compare=False)


def restore_generators(cli: ml_collections.ConfigDict | None, workdir: str,
                       step: int | None = None) -> dict[str, Restored]:
  """Every translating generator of ``workdir``'s checkpoint (``step``; None: ``sample.step``
  of ``cli``, the latest if -1) by name: pix2pix {'G'}, CycleGAN {'AtoB', 'BtoA'}, each
  with its ``inverse``. Only the generators' fields are read, not the discriminators, Adam
  states or image pools."""
  config, step, channels = workdir_config(cli, workdir, step)
  model = gan.get_model(config)
  data = gan.DataInfo(*channels)
  nets = model.build(config, data)
  abstract = jax.eval_shape(lambda: model.init_state(nets, config, data, make_key(0)))
  ckpt = checkpoints.Checkpointer(workdir, create=False)
  try:
    fields = ckpt.restore_fields({f: getattr(abstract, f) for f in model.GENERATOR_FIELDS},
                                 step)
  finally:
    ckpt.close()
  logging.info('restored the %s generator(s) of step %d from %s (%s, %s, %d px)', model.NAME,
               step, ckpt.directory, config.data.dataset, config.data.direction,
               config.image_size)
  out = {name: Restored(config, step, tuple(ch), module, params, stats, workdir, name)
         for name, (module, params, stats, ch) in model.generators(nets, fields, data).items()}
  if set(out) == {'AtoB', 'BtoA'}:
    out['AtoB'].inverse, out['BtoA'].inverse = out['BtoA'], out['AtoB']
  return out


def select(generators: dict[str, Restored],
           config: ml_collections.ConfigDict) -> list[Restored]:
  """The generators ``sample.direction`` picks for sampling or evaluation: CycleGAN's
  'AtoB' (G_A), 'BtoA' (G_B) or 'both'; pix2pix's one generator whatever it says."""
  if len(generators) == 1:
    return list(generators.values())
  d = config.sample.get('direction', 'both') if 'sample' in config else 'both'
  if d not in SAMPLE_DIRECTIONS:
    raise ConfigError(f"sample.direction must be 'AtoB', 'BtoA' or 'both', got {d!r}.")
  return [generators[n] for n in ('AtoB', 'BtoA') if d in (n, 'both')]


def restore_generator(cli: ml_collections.ConfigDict | None, workdir: str,
                      step: int | None = None, direction: str | None = None) -> Restored:
  """The generator of ``workdir``'s checkpoint (``step`` as in :func:`restore_generators`).
  CycleGAN: ``direction`` 'AtoB' (G_A, the default) or 'BtoA' (G_B)."""
  gens = restore_generators(cli, workdir, step)
  if len(gens) == 1:
    return next(iter(gens.values()))
  direction = direction or 'AtoB'
  if direction not in gens:
    raise ConfigError(f'direction must be one of {", ".join(gens)} for this checkpoint, got '
                      f'{direction!r}.')
  return gens[direction]
