"""The training data of the configured model: paired batches for pix2pix, independent A
and B streams for CycleGAN, behind one small interface the training loop uses.

``for_config(config)`` returns an object with ``info`` (a :class:`p2p_jax.gan.DataInfo`:
channels and the epoch length; ``channels``: the same without reading the dataset's size), ``train_iter(per_process_batch, start_step=...,
process_index=..., process_count=...)`` (numpy batches, resumable at any step),
``sample_batch(n)`` (fixed eval examples for the training's sample grids), ``epoch_note()``
(how an epoch is counted, for the log) and ``source``.
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


def for_config(config: ml_collections.ConfigDict) -> PairedData | UnpairedData:
  if gan.model_name(config) == 'cyclegan':
    return UnpairedData(config)
  return PairedData(config)


def channels(config: ml_collections.ConfigDict) -> gan.DataInfo:
  """The configured data's channels (``steps_per_epoch`` 1), for shapes and summaries."""
  return for_config(config).channels
