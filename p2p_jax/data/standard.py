"""The pix2pix authors' paired datasets as a :class:`p2p_jax.data.sources.PairedSource`.

``data.dataset`` = facades, cityscapes, maps, edges2shoes, edges2handbags or night2day:
:class:`StandardSource` prepares the tfds dataset ``p2p_paired/<name>`` once (see
:mod:`p2p_jax.data.paired_builder` for where the data comes from) and reads it.
"""

from __future__ import annotations

import os

from absl import logging
import ml_collections
import tensorflow as tf
import tensorflow_datasets as tfds

from p2p_jax.data import archives, cityscapes, paired_builder, preprocess, sources
from p2p_jax.errors import DataError


class StandardSource:
  """A standard dataset as a :class:`p2p_jax.data.sources.PairedSource`.

  Construction and ``channels_a/b`` touch no files; the first ``num_examples`` or
  ``as_dataset`` call prepares the dataset (from manual_dir or a download) if needed.
  """

  channels_a = 3
  channels_b = 3

  def __init__(self, name: str, *, data_dir: str = '', manual_dir: str = '',
               strict: bool = False, train_split: str = 'train', max_dataset_size: int = -1,
               preprocess_mode: str = 'resize_and_crop', crop_size: int = 256):
    if name not in paired_builder.CONFIGS:
      raise DataError(f'Unknown standard dataset {name!r}; known: '
                      f'{", ".join(paired_builder.NAMES)}.')
    self.name = name
    self.builder_config = paired_builder.CONFIGS[name]
    self._data_dir = os.path.expanduser(data_dir) if data_dir else None
    self._manual_dir = manual_dir
    self._strict = strict
    self._train_split = train_split
    self._max = max_dataset_size
    self._mode = preprocess_mode
    self._crop = crop_size
    self._builder: paired_builder.P2pPaired | None = None

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'StandardSource':
    d = config.data
    return cls(d.dataset, data_dir=d.data_dir, manual_dir=d.manual_dir, strict=d.strict,
               train_split=d.train_split, max_dataset_size=d.max_dataset_size,
               preprocess_mode=d.preprocess, crop_size=config.image_size)

  def builder(self) -> paired_builder.P2pPaired:
    """The prepared tfds builder (prepares on first call)."""
    if self._builder is not None:
      return self._builder
    b = paired_builder.P2pPaired(config=self.name, data_dir=self._data_dir)
    # (tfds warns about a missing dataset_info.json when asked about an absent folder.)
    if not ((b.data_path / 'dataset_info.json').exists() and b.is_prepared()):
      layout = None
      if self._manual_dir:
        # Fails fast, before tfds.
        layout = paired_builder.resolve_manual(self._manual_dir, self.name)
      elif not self.builder_config.auto_download:
        raise DataError(f'{self.name} is not prepared in {b.data_dir} and no '
                        'data.manual_dir was given.\n' + cityscapes.instructions())
      b = paired_builder.P2pPaired(config=self.name, data_dir=self._data_dir,
                                   manual_path=layout, strict=self._strict)
      logging.info('Preparing p2p_paired/%s into %s (once).', self.name, b.data_dir)
      b.download_and_prepare(download_config=tfds.download.DownloadConfig(
          try_download_gcs=False))
      # Reload the written info.
      b = paired_builder.P2pPaired(config=self.name, data_dir=self._data_dir)
      counts = ', '.join(f'{k} {v.num_examples}' for k, v in sorted(
          b.info.splits.items(), key=lambda kv: _split_order(kv[0])))
      logging.info('Prepared p2p_paired/%s in %s: %s pairs.', self.name, b.data_dir, counts)
    self._builder = b
    return b

  def _split_info(self, split: str) -> int:
    b = self.builder()
    splits = b.info.splits
    if split not in splits:
      raise DataError(
          f'Dataset {self.name} (prepared in {b.data_dir}) has no {split!r} split; it has '
          f'{", ".join(sorted(splits.keys()))}. Set --config.data.train_split / '
          '--config.data.eval_split to one of them.')
    n = splits[split].num_examples
    if n == 0:
      raise DataError(f'Split {split!r} of {self.name} (in {b.data_dir}) is empty.')
    return n

  def num_examples(self, split: str) -> int:
    n = self._split_info(split)
    if split == self._train_split and self._max > 0:
      n = min(n, self._max)
    return n

  def _check_sizes(self, split: str) -> None:
    min_size = dict(self.builder().info.metadata.get('min_size', {}))
    if split in min_size:
      h, w = min_size[split]
      preprocess.check_sizes(self._mode, self._crop, [(f'smallest {split} pair', h, w)],
                             where=f'{self.name}')

  def as_dataset(self, split: str, *, process_index: int = 0, process_count: int = 1,
                 shuffle_files: bool = False, seed: int = 0) -> tf.data.Dataset:
    n = self.num_examples(split)
    self._check_sizes(split)
    spec = f'{split}[:{n}]' if n < self._split_info(split) else split
    if process_count > 1:
      start, stop = sources.process_shard(n, process_index, process_count,
                                          f'Split {split!r} of {self.name}')
      spec = f'{split}[{start}:{stop}]'
    ds = self.builder().as_dataset(
        split=spec, shuffle_files=shuffle_files,
        read_config=tfds.ReadConfig(shuffle_seed=seed, try_autocache=False))  # The pipeline caches.
    return ds.map(lambda ex: {'A': ex['A'], 'B': ex['B'], 'name': ex['name']},
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _split_order(split: str) -> int:
  return archives.SPLITS.index(split) if split in archives.SPLITS else len(archives.SPLITS)


@sources.register(*paired_builder.NAMES)
def _make_source(config: ml_collections.ConfigDict) -> StandardSource:
  return StandardSource.from_config(config)

