"""The training data of the configured model: paired batches for pix2pix, independent A
and B streams for CycleGAN, behind one small interface the training loop uses.

``for_config(config)`` returns an object with ``info`` (a :class:`p2p_jax.gan.DataInfo`:
channels and the epoch length; ``channels``: the same without reading the dataset's size), ``train_iter(per_process_batch, start_step=...,
process_index=..., process_count=...)`` (numpy batches, resumable at any step),
``sample_batch(n)`` (fixed eval examples for the training's sample grids), ``epoch_note()``
(how an epoch is counted, for the log) and ``source``; for sampling and evaluating a
generator by its name (pix2pix 'G', CycleGAN 'AtoB' / 'BtoA'): ``eval_inputs`` (what it
translates) and ``eval_pairs`` (inputs with their true translations, where the data has
them) with ``direction_config`` (the config whose ``data.direction`` describes them).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Iterator

import ml_collections
import numpy as np

from p2p_jax import gan
from p2p_jax.data import pipeline, sources, unpaired


class PairedData:
  """pix2pix: batches {'input', 'target'} from a paired source."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.source = sources.get_source(config)

  @functools.cached_property
  def info(self) -> gan.DataInfo:
    return dataclasses.replace(self.channels, steps_per_epoch=pipeline.steps_per_epoch(
        self.config, self.source))

  @property
  def channels(self) -> gan.DataInfo:
    """Channels only (steps_per_epoch 1): no dataset preparation."""
    ch = sources.io_channels(self.config, self.source)
    return gan.DataInfo(ch.input, ch.target)

  def epoch_note(self) -> str:
    """How an epoch is counted, for the log."""
    n = self.source.num_examples(self.config.data.train_split)
    return f'{n} training pairs // batch {self.config.batch_size}'

  def train_iter(self, per_process_batch: int, **kw) -> Iterator[dict[str, np.ndarray]]:
    return pipeline.as_numpy(pipeline.train_dataset(self.config, self.source,
                                                    per_process_batch, **kw))

  def sample_batch(self, n: int) -> dict[str, np.ndarray]:
    return next(pipeline.as_numpy(pipeline.eval_dataset(self.config, self.source, n,
                                                        max_examples=n)))

  @property
  def paired_source(self) -> sources.PairedSource:
    """The paired dataset (e.g. for the FCN-score's segmenter)."""
    return self.source

  def direction_config(self, name: str) -> ml_collections.ConfigDict:
    del name  # One generator: input -> target as data.direction says.
    return self.config

  def eval_pairs(self, name: str, batch_size: int, *, size: int | None = None,
                 max_examples: int = -1) -> Iterator[dict]:
    """The eval split as numpy batches {'input', 'target', 'name'}."""
    del name
    return pipeline.eval_batches(self.config, batch_size, size=size,
                                 max_examples=max_examples,
                                 source=self.source if size in (None, self.config.image_size)
                                 else None)

  eval_inputs = eval_pairs


class UnpairedData:
  """CycleGAN: batches {'A', 'B'} of independent images."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.source = unpaired.get_source(config)

  @functools.cached_property
  def info(self) -> gan.DataInfo:
    return dataclasses.replace(self.channels, steps_per_epoch=unpaired.steps_per_epoch(
        self.config, self.source))

  @property
  def channels(self) -> gan.DataInfo:
    """Channels only (steps_per_epoch 1)."""
    return gan.DataInfo(self.source.channels_a, self.source.channels_b)

  def epoch_note(self) -> str:
    """How an epoch is counted, for the log."""
    split = self.config.data.train_split
    na, nb = (self.source.num_images(s, split) for s in unpaired.SIDES)
    return f'max(|A| {na}, |B| {nb}) images // batch {self.config.batch_size}'

  def train_iter(self, per_process_batch: int, **kw) -> Iterator[dict[str, np.ndarray]]:
    return unpaired.as_numpy(unpaired.train_dataset(self.config, self.source,
                                                    per_process_batch, **kw))

  def sample_batch(self, n: int) -> dict[str, np.ndarray]:
    side = lambda s: next(unpaired.as_numpy(unpaired.eval_dataset(  # noqa: E731
        self.config, self.source, s, n, max_examples=n)))['image']
    return {'A': side('A'), 'B': side('B')}

  def eval_inputs(self, name: str, batch_size: int, *, size: int | None = None,
                  max_examples: int = -1) -> Iterator[dict]:
    """The eval split's images of the side generator ``name`` ('AtoB': A, 'BtoA': B)
    translates, as numpy batches {'input', 'name'}."""
    c, source = self.config, self.source
    if size not in (None, c.image_size):
      c = pipeline.data_config_at(c, size)
      source = unpaired.get_source(c)
    for b in unpaired.as_numpy(unpaired.eval_dataset(c, source, _side(name), batch_size,
                                                     max_examples=max_examples)):
      yield {'input': b['image'], 'name': _names(b['name'])}

  @property
  def paired_source(self) -> sources.PairedSource | None:
    """The paired dataset behind the unpaired data, or None (truly unpaired data)."""
    return unpaired.paired_source(self.source)

  def direction_config(self, name: str) -> ml_collections.ConfigDict:
    """A copy of the config whose ``data.direction`` says which side of the paired
    dataset (if any) generator ``name`` translates from, as pix2pix's would."""
    c = ml_collections.ConfigDict(self.config.to_dict())
    if _side(name) == 'B':
      c.data.direction = 'AtoB' if c.data.direction == 'BtoA' else 'BtoA'
    c.model.num_downs = 2  # Sizes: multiples of 4 for CycleGAN's networks (2 ** 2).
    return c

  def eval_pairs(self, name: str, batch_size: int, *, size: int | None = None,
                 max_examples: int = -1) -> Iterator[dict] | None:
    """Generator ``name``'s inputs with their true translations {'input', 'target',
    'name'} where the unpaired data is a paired dataset used as unpaired (embedded,
    facades, maps, cityscapes, ...); None for truly unpaired data."""
    paired = self.paired_source
    if paired is None:
      return None
    c = self.direction_config(name)
    return pipeline.eval_batches(c, batch_size, size=size, max_examples=max_examples,
                                 source=paired if size in (None, c.image_size) else None)


def _side(name: str) -> str:
  if name not in ('AtoB', 'BtoA'):
    raise ValueError(f"a CycleGAN generator is 'AtoB' or 'BtoA', got {name!r}")
  return name[0]


def _names(raw) -> list[str]:
  return [n.decode() if isinstance(n, bytes) else str(n) for n in raw]


def for_config(config: ml_collections.ConfigDict) -> PairedData | UnpairedData:
  if gan.model_name(config) == 'cyclegan':
    return UnpairedData(config)
  return PairedData(config)


def channels(config: ml_collections.ConfigDict) -> gan.DataInfo:
  """The configured data's channels (``steps_per_epoch`` 1), for shapes and summaries."""
  return for_config(config).channels
