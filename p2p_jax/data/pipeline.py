"""tf.data pipeline: raw (A, B) pairs from a source -> batches of model inputs in [-1, 1].

Train: cache (small datasets) -> shuffle (seeded, reshuffled each epoch) -> repeat ->
enumerate -> skip to the resume position -> per-example jitter/mirror seeded by the
example's position in the stream -> batch -> prefetch. The stream is therefore a pure
function of (seed, position): resuming at step N yields exactly the batches an
uninterrupted run would have seen.

Eval: one deterministic pass, no jitter (:func:`eval_dataset`; as numpy batches with str
names: :func:`eval_batches`). Single images and folders of them (for sampling) are
prepared with the eval split's resize: :func:`image_input`, :func:`image_folder_batches`.
"""

from __future__ import annotations

import os
from typing import Iterator

import ml_collections
import numpy as np
import tensorflow as tf

from p2p_jax.data import image_files, preprocess, sources
from p2p_jax.errors import DataError

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


def data_config_at(config: ml_collections.ConfigDict, size: int) -> ml_collections.ConfigDict:
  """``config`` whose eval pipeline yields ``size`` x ``size`` images."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.image_size = int(size)
  if c.data.get('load_size', 0) < size:
    c.data.load_size = int(size)
  return c


def eval_batches(config: ml_collections.ConfigDict, batch_size: int, *,
                 size: int | None = None, max_examples: int = -1,
                 source: sources.PairedSource | None = None) -> Iterator[dict]:
  """The eval split as numpy batches {'input', 'target', 'name' (list of str)}, at
  ``size`` px (default ``config.image_size``)."""
  c = config if size is None else data_config_at(config, size)
  source = source or sources.get_source(c)
  for b in as_numpy(eval_dataset(c, source, batch_size, max_examples=max_examples)):
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in b['name']]
    yield {'input': b['input'], 'target': b['target'], 'name': names}


def image_input(image, size: int, channels: int) -> np.ndarray:
  """One image (path, PIL image or uint8 array) -> float32 [size, size, channels] in
  [-1, 1], resized as the eval split is (:func:`preprocess.resize`, then clipped)."""
  x = tf.image.convert_image_dtype(image_files.read_uint8(image, channels), tf.float32)
  x = tf.clip_by_value(preprocess.resize(x, size, size), 0.0, 1.0)
  return (x * 2.0 - 1.0).numpy()


def image_folder_batches(root: str, channels: int, size: int, batch_size: int,
                         max_images: int = -1) -> Iterator[dict]:
  """Every image under ``root`` (recursively, sorted) as batches {'input', 'name'}, each
  resized to ``size`` x ``size``; names are paths relative to ``root`` without extension."""
  root = os.path.abspath(os.path.expanduser(root))
  if not os.path.isdir(root):
    raise DataError(f'sample.input_dir {root} is not a directory.')
  files = [str(f) for f in image_files.list_images(root)]
  if not files:
    raise DataError(f'sample.input_dir {root} holds no images '
                    f'({", ".join(image_files.IMAGE_EXTENSIONS)}).')
  if max_images > 0:
    files = files[:max_images]
  for i in range(0, len(files), batch_size):
    chunk = files[i:i + batch_size]
    x = np.stack([image_input(f, size, channels) for f in chunk])
    names = [os.path.splitext(os.path.relpath(f, root))[0] for f in chunk]
    yield {'input': x, 'name': names}
