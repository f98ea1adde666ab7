"""tf.data pipeline: raw (A, B) pairs from a source -> batches of model inputs in [-1, 1].

Train: cache (small datasets) -> shuffle (seeded, reshuffled each epoch) -> repeat ->
enumerate -> skip to the resume position -> per-example jitter/mirror seeded by the
example's position in the stream -> batch -> prefetch. The stream is therefore a pure
function of (seed, position): resuming at step N yields exactly the batches an
uninterrupted run would have seen.
"""

from __future__ import annotations

from typing import Iterator

import ml_collections
import numpy as np
import tensorflow as tf

from p2p_jax.data import preprocess, sources

CACHE_MAX_EXAMPLES = 5000  # Cache decoded pairs in memory for datasets up to this size.


def _to_model_inputs(config, a, b, *, train: bool, seed=None):
  a = tf.image.convert_image_dtype(a, tf.float32)
  b = tf.image.convert_image_dtype(b, tf.float32)
  a, b = preprocess.preprocess_pair(
      a, b, mode=config.data.preprocess, load_size=config.data.load_size,
      crop_size=config.image_size, flip=not config.data.no_flip, train=train, seed=seed,
      size_multiple=2 ** config.model.num_downs)
  x, y = (a, b) if config.data.direction == 'AtoB' else (b, a)
  return x * 2.0 - 1.0, y * 2.0 - 1.0


def _options() -> tf.data.Options:
  opts = tf.data.Options()
  opts.deterministic = True
  opts.experimental_optimization.map_parallelization = True
  return opts


def train_dataset(config: ml_collections.ConfigDict, source: sources.PairedSource,
                  per_process_batch: int, *, start_step: int = 0, process_index: int = 0,
                  process_count: int = 1) -> tf.data.Dataset:
  """Endless stream of training batches {'input', 'target'} (float32, [-1, 1])."""
  split = config.data.train_split
  n = source.num_examples(split)
  ds = source.as_dataset(split, process_index=process_index, process_count=process_count,
                         shuffle_files=True, seed=config.seed)
  # Sources apply data.max_dataset_size to the train split; n already reflects it.
  if n <= CACHE_MAX_EXAMPLES:
    ds = ds.cache()
  ds = ds.shuffle(config.data.shuffle_buffer, seed=config.seed, reshuffle_each_iteration=True)
  ds = ds.repeat().enumerate()
  k = max(1, config.get('steps_per_dispatch', 1))
  ds = ds.skip(start_step * per_process_batch)
  base_seed = tf.constant([config.seed, process_index], tf.int64)

  def prep(i, ex):
    seed = tf.random.experimental.stateless_fold_in(base_seed, i)
    x, y = _to_model_inputs(config, ex['A'], ex['B'], train=True, seed=seed)
    return {'input': x, 'target': y}

  ds = ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  ds = ds.batch(per_process_batch, drop_remainder=True)
  if k > 1:
    ds = ds.batch(k, drop_remainder=True)
  return ds.prefetch(max(1, config.data.prefetch)).with_options(_options())


def eval_dataset(config: ml_collections.ConfigDict, source: sources.PairedSource,
                 batch_size: int, *, split: str | None = None, max_examples: int = -1,
                 process_index: int = 0, process_count: int = 1) -> tf.data.Dataset:
  """One deterministic pass over ``split`` (no jitter): {'input', 'target', 'name'}."""
  split = split or config.data.eval_split
  ds = source.as_dataset(split, process_index=process_index, process_count=process_count,
                         shuffle_files=False, seed=config.seed)
  if max_examples > 0:
    ds = ds.take(max_examples)

  def prep(ex):
    x, y = _to_model_inputs(config, ex['A'], ex['B'], train=False)
    return {'input': x, 'target': y, 'name': ex['name']}

  ds = ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(batch_size).prefetch(2).with_options(_options())


def as_numpy(ds: tf.data.Dataset) -> Iterator[dict[str, np.ndarray]]:
  return ds.as_numpy_iterator()


def steps_per_epoch(config: ml_collections.ConfigDict, source: sources.PairedSource) -> int:
  n = source.num_examples(config.data.train_split)
  return max(1, n // config.batch_size)
