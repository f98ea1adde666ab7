"""The default dataset (``data.dataset='embedded'``): procedural facades as a TFDS builder.

Nothing is downloaded: :mod:`p2p_jax.data.procedural_facades` draws CMP-Facades-like
pairs (A = photo-like rendering, B = label map in the CMP palette); this module stores them
as a regular TFDS dataset,
``p2p_embedded_facades``, prepared automatically on first use (a few seconds for the
default 400 + 50 pairs at 72 px) under ``config.data.data_dir`` (tfds default when empty).
Each (resolution, num_train, num_test, seed) combination is its own builder config, so
changing the size prepares a new copy and never reuses a stale one.

The dataset content depends only on ``config.data.embedded_*`` (and on the fixed dataset
seed ``config.data.embedded_seed``, default 0), never on the training seed ``config.seed``.
"""

from __future__ import annotations

import dataclasses
import functools

import ml_collections
import tensorflow as tf
from etils import epath
import tensorflow_datasets as tfds

from p2p_jax.data import procedural_facades, sources
from p2p_jax.errors import DataError

DATASET_NAME = 'p2p_embedded_facades'
DEFAULT_SEED = 0  # Dataset seed: fixed, independent of the training seed.
SPLITS = ('train', 'test')


@dataclasses.dataclass(eq=False)
class ProceduralFacadesConfig(tfds.core.BuilderConfig):
  """One size of the procedural facades dataset."""

  resolution: int = 72
  num_train: int = 400
  num_test: int = 50
  seed: int = DEFAULT_SEED


def config_name(resolution: int, num_train: int, num_test: int, seed: int) -> str:
  return f'r{resolution}_train{num_train}_test{num_test}_seed{seed}'


def make_builder_config(resolution: int = 72, num_train: int = 400, num_test: int = 50,
                        seed: int = DEFAULT_SEED) -> ProceduralFacadesConfig:
  """Validated builder config; its name encodes every parameter."""
  for what, value, low in (('embedded_resolution', resolution, 8),
                           ('embedded_num_train', num_train, 1),
                           ('embedded_num_test', num_test, 1),
                           ('embedded_seed', seed, 0)):
    if int(value) != value or value < low:
      raise DataError(f'data.{what} must be an integer >= {low}, got {value!r}')
  resolution, num_train, num_test, seed = map(int, (resolution, num_train, num_test, seed))
  return ProceduralFacadesConfig(
      name=config_name(resolution, num_train, num_test, seed),
      description=(f'{num_train} train / {num_test} test procedural facades at '
                   f'{resolution}x{resolution} px, dataset seed {seed}.'),
      resolution=resolution, num_train=num_train, num_test=num_test, seed=seed)


class ProceduralFacades(tfds.core.GeneratorBasedBuilder):
  """Procedural CMP-Facades-like pairs: A = photo-like rendering, B = CMP label colours."""

  name = DATASET_NAME
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [make_builder_config()]

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS 4.9.x looks this up through the `importlib_resources` backport, which it does
    # not declare as a dependency on Python >= 3.9; the file path is all it needs.
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    r = self.builder_config.resolution
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            'A': tfds.features.Image(shape=(r, r, 3), encoding_format='png'),
            'B': tfds.features.Image(shape=(r, r, 3), encoding_format='png'),
            'name': tfds.features.Text(),
        }),
        supervised_keys=None,
        homepage='https://cmp.felk.cvut.cz/~tylecr1/facade/',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    cfg = self.builder_config
    return {'train': self._generate_examples('train', cfg.num_train),
            'test': self._generate_examples('test', cfg.num_test)}

  def _generate_examples(self, split: str, n: int):
    cfg = self.builder_config
    for name, photo, labels, _ in procedural_facades.make_split(split, n, cfg.resolution, cfg.seed):
      yield name, {'A': photo, 'B': labels, 'name': name}


def make_builder(resolution: int = 72, num_train: int = 400, num_test: int = 50,
                 seed: int = DEFAULT_SEED, data_dir: str | None = None) -> ProceduralFacades:
  """Builder for one size (not prepared yet; see :class:`ProceduralSource`)."""
  cfg = make_builder_config(resolution, num_train, num_test, seed)
  # TFDS rejects a different object under the name of a predefined config.
  config = cfg.name if cfg.name in ProceduralFacades.builder_configs else cfg
  return ProceduralFacades(config=config, data_dir=data_dir or None)


class ProceduralSource:
  """:class:`p2p_jax.data.sources.PairedSource` over :class:`ProceduralFacades`.

  Preparation (generation and writing of the TFRecords) happens lazily, on the first
  call to :meth:`num_examples` or :meth:`as_dataset`.
  """

  name = 'embedded'
  channels_a = 3
  channels_b = 3

  def __init__(self, resolution: int = 72, num_train: int = 400, num_test: int = 50,
               seed: int = DEFAULT_SEED, data_dir: str | None = None):
    self.config = make_builder_config(resolution, num_train, num_test, seed)
    self.data_dir = data_dir or None

  @functools.cached_property
  def builder(self) -> ProceduralFacades:
    c = self.config
    builder = make_builder(c.resolution, c.num_train, c.num_test, c.seed, self.data_dir)
    if not builder.is_prepared():
      builder.download_and_prepare()
    return builder

  def _check_split(self, split: str) -> None:
    base = split.split('[', 1)[0].strip()
    if base not in SPLITS:
      raise DataError(f'Unknown split {split!r} for the embedded dataset; '
                      f'it has {", ".join(SPLITS)}.')

  def num_examples(self, split: str) -> int:
    self._check_split(split)
    try:
      n = self.builder.info.splits[split].num_examples
    except (KeyError, ValueError, AssertionError) as e:
      raise DataError(f'Bad split {split!r} for the embedded dataset: {e}') from e
    if n <= 0:
      raise DataError(f'Split {split!r} of the embedded dataset is empty.')
    return int(n)

  def as_dataset(self, split: str, *, process_index: int = 0, process_count: int = 1,
                 shuffle_files: bool = False, seed: int = 0) -> tf.data.Dataset:
    self._check_split(split)
    total = self.num_examples(split)
    start, stop = sources.process_shard(total, process_index, process_count,
                                        f'Split {split!r} of the embedded dataset')
    sub = split if process_count == 1 else f'{split}[{start}:{stop}]'
    # No autocache: the pipeline decides what to cache, and a partially read autocached
    # dataset (e.g. ``take(k)`` for sample grids) makes tf.data log a warning.
    read_config = tfds.ReadConfig(shuffle_seed=seed if shuffle_files else None,
                                  try_autocache=False)
    return self.builder.as_dataset(split=sub, shuffle_files=shuffle_files,
                                   read_config=read_config)


@sources.register('embedded')
def make_source(config: ml_collections.ConfigDict) -> ProceduralSource:
  """The embedded dataset sized by ``config.data.embedded_*``.

  ``data.max_dataset_size`` caps the training pairs; pairs are seeded by index, so the
  capped split holds exactly the first pairs of the full one.
  """
  d = config.data
  num_train = d.embedded_num_train
  if d.get('max_dataset_size', -1) > 0:
    num_train = min(num_train, d.max_dataset_size)
  return ProceduralSource(
      resolution=d.embedded_resolution, num_train=num_train,
      num_test=d.embedded_num_test, seed=d.get('embedded_seed', DEFAULT_SEED),
      data_dir=d.get('data_dir', '') or None)
