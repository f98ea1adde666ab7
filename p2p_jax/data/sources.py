"""Paired-image sources: one interface over the embedded (procedural), standard and custom
datasets.

A source yields *raw* pairs; :mod:`p2p_jax.data.pipeline` turns them into training
batches (direction, jitter, mirror, scaling, batching). Every source returns a
``tf.data.Dataset`` of dicts::

  {'A': uint8 or uint16 [H, W, channels_a],
   'B': uint8 or uint16 [H, W, channels_b],   # same H, W as 'A'
   'name': tf.string}                          # file or example name, for messages

A and B are already split (an aligned ``A|B`` image is cut in two by the builder), so the
pipeline treats every dataset alike.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Protocol

import ml_collections
import tensorflow as tf

from p2p_jax.errors import DataError


class PairedSource(Protocol):
  """What the pipeline needs from a dataset."""

  name: str
  channels_a: int  # Channels of side A (1 or 3).
  channels_b: int  # Channels of side B (1 or 3).

  def num_examples(self, split: str) -> int:
    """Number of pairs in ``split``; raises DataError for an unknown or empty split."""

  def as_dataset(self, split: str, *, process_index: int = 0, process_count: int = 1,
                 shuffle_files: bool = False, seed: int = 0) -> tf.data.Dataset:
    """Pairs of ``split`` owned by this process (disjoint across processes), in a
    deterministic order for a given seed."""


_FACTORIES: dict[str, Callable[[ml_collections.ConfigDict], PairedSource]] = {}


def register(*names: str):
  """Decorator: registers a ``config -> PairedSource`` factory under dataset names."""

  def wrap(factory):
    for n in names:
      _FACTORIES[n] = factory
    return factory

  return wrap


def _import_builtin_sources() -> None:
  # Imported for their @register side effects.
  from p2p_jax.data import procedural_dataset  # noqa: F401
  try:
    from p2p_jax.data import standard  # noqa: F401
  except ImportError:
    pass
  try:
    from p2p_jax.data import folders  # noqa: F401
  except ImportError:
    pass


def get_source(config: ml_collections.ConfigDict) -> PairedSource:
  """The source named by ``config.data.dataset``."""
  _import_builtin_sources()
  name = config.data.dataset
  if name not in _FACTORIES:
    raise DataError(
        f'Unknown dataset {name!r}. Known: {", ".join(sorted(_FACTORIES))}. '
        'For your own images use configs/custom.py with --config.data.data_path=DIR.')
  return _FACTORIES[name](config)


def process_shard(num_examples: int, process_index: int, process_count: int,
                  what: str = 'The split') -> tuple[int, int]:
  """``[start, stop)`` of the examples process ``process_index`` of ``process_count`` reads.

  Equal contiguous shards of ``num_examples // process_count`` (the remainder is left out),
  so every process sees as many examples per epoch. Every source shards through this.
  """
  if not 0 <= process_index < process_count:
    raise ValueError(f'process_index {process_index} not in [0, {process_count})')
  if num_examples < process_count:
    raise DataError(f'{what} has {num_examples} examples, fewer than the {process_count} '
                    'processes reading it.')
  per = num_examples // process_count
  return process_index * per, (process_index + 1) * per


@dataclasses.dataclass(frozen=True)
class Channels:
  input: int
  target: int


def io_channels(config: ml_collections.ConfigDict, source: PairedSource | None = None
                ) -> Channels:
  """Generator input/output channels implied by the dataset and the direction."""
  source = source or get_source(config)
  a, b = source.channels_a, source.channels_b
  if config.data.direction == 'AtoB':
    return Channels(a, b)
  if config.data.direction == 'BtoA':
    return Channels(b, a)
  raise DataError(f"data.direction must be 'AtoB' or 'BtoA', got {config.data.direction!r}")
