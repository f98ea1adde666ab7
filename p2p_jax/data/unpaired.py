"""Unpaired data for CycleGAN: two independent image streams, A and B.

An :class:`UnpairedSource` yields the images of one side at a time. Sources
(``config.data.dataset``):

* ``'cycle_gan/<name>'``: the tfds ``cycle_gan`` datasets (horse2zebra, monet2photo,
  apple2orange, summer2winter_yosemite, cezanne2photo, ukiyoe2photo, vangogh2photo,
  iphone2dslr_flower, maps, cityscapes, facades), downloaded by tfds; offline,
  ``data.manual_dir`` names the downloaded ``<name>.zip`` or its extracted folder.
* ``'unpaired_folder'``: ``data.data_path`` in the reference layout
  ``DIR/trainA/ DIR/trainB/ DIR/testA/ DIR/testB/`` (split ``S`` reads ``DIR/SA`` and
  ``DIR/SB``), any sizes, grayscale or colour, 8 or 16 bits, unreadable files skipped
  with a warning (``data.strict``: an error), exactly as the paired folders
  (:mod:`p2p_jax.data.folders`).
* any paired dataset (``'embedded'``, the pix2pix names such as ``'facades'`` and
  ``'maps'``, ``'custom'``): A and B taken from its pairs and shuffled independently. With
  ``data.unpaired_halves`` A comes from the even-numbered pairs and B from the odd ones,
  so no B image has its A partner in the data at all (the embedded CycleGAN default).

``data.direction='BtoA'`` swaps the sides, so that the model's A is the dataset's B (e.g.
labels -> photo on facades, whose A is the photo).

Training batches (:func:`train_dataset`) are ``{'A': [B, S, S, C_A], 'B': [B, S, S, C_B]}``
in [-1, 1]: each side is its own endless stream, shuffled, resized to ``load_size``,
randomly cropped to ``image_size`` and mirrored with its own random draws (the reference's
UnalignedDataset). An epoch is ``max(|A|, |B|)`` images (:func:`steps_per_epoch`). Each
stream is a pure function of (seed, position), so a resumed run sees the same batches.
"""

from __future__ import annotations

import functools
import os
import zipfile
from pathlib import Path
from typing import Iterator, Protocol

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from p2p_jax.data import folders, preprocess, sources
from p2p_jax.errors import DataError

SIDES = ('A', 'B')
CYCLE_GAN_NAMES = ('apple2orange', 'summer2winter_yosemite', 'horse2zebra', 'monet2photo',
                   'cezanne2photo', 'ukiyoe2photo', 'vangogh2photo', 'maps', 'cityscapes',
                   'facades', 'iphone2dslr_flower')
CACHE_MAX_EXAMPLES = 5000
SIZE_MULTIPLE = 4  # The ResNet generator halves each side twice.


class UnpairedSource(Protocol):
  """What the unpaired pipeline needs from a dataset."""

  name: str
  channels_a: int
  channels_b: int

  def num_images(self, side: str, split: str) -> int:
    """Images of ``side`` ('A' or 'B') in ``split``."""

  def side_dataset(self, side: str, split: str, *, process_index: int = 0,
                   process_count: int = 1, shuffle_files: bool = False,
                   seed: int = 0) -> tf.data.Dataset:
    """{'image': uint8/uint16 [H, W, C], 'name': tf.string} of one side, this process's
    share, in a deterministic order for a given seed."""


def _check_side(side: str) -> None:
  if side not in SIDES:
    raise ValueError(f'side must be one of {SIDES}, got {side!r}')


# --- Any paired source, used as unpaired ----------------------------------------------------

class PairedAsUnpaired:
  """The A images and the B images of a paired source as two separate sets."""

  def __init__(self, paired: sources.PairedSource, halves: bool = False):
    self.paired = paired
    self.halves = halves
    self.name = paired.name
    self.channels_a = paired.channels_a
    self.channels_b = paired.channels_b

  def num_images(self, side: str, split: str) -> int:
    _check_side(side)
    n = self.paired.num_examples(split)
    if not self.halves:
      return n
    return (n + 1) // 2 if side == 'A' else n // 2

  def side_dataset(self, side: str, split: str, *, process_index: int = 0,
                   process_count: int = 1, shuffle_files: bool = False,
                   seed: int = 0) -> tf.data.Dataset:
    _check_side(side)
    if self.halves and self.num_images(side, split) < 1:
      raise DataError(f'Split {split!r} of {self.name} needs at least 2 pairs to be split '
                      'into disjoint A and B halves.')
    # Halves are taken by position, so their file order must not be shuffled.
    ds = self.paired.as_dataset(split, process_index=process_index,
                                process_count=process_count,
                                shuffle_files=shuffle_files and not self.halves, seed=seed)
    if self.halves:
      parity = 0 if side == 'A' else 1
      ds = ds.enumerate().filter(lambda i, _: i % 2 == parity).map(lambda _, ex: ex)
    return ds.map(lambda ex: {'image': ex[side], 'name': ex['name']})


# --- A folder in the reference layout: DIR/trainA, DIR/trainB, DIR/testA, DIR/testB ---------

class UnpairedFolderSource:
  """``data.data_path`` with ``<split>A/`` and ``<split>B/`` image folders."""

  name = 'unpaired_folder'

  def __init__(self, data_path: str, *, strict: bool = False, train_split: str = 'train',
               eval_split: str = 'test', max_dataset_size: int = -1,
               preprocess_mode: str = 'resize_and_crop', crop_size: int = 256):
    if not data_path:
      raise DataError('The unpaired folder dataset needs a folder: pass '
                      '--config.data.data_path=DIR (with DIR/trainA, DIR/trainB, DIR/testA, '
                      'DIR/testB).')
    self.root = Path(os.path.abspath(os.path.expanduser(data_path)))
    if not self.root.is_dir():
      raise DataError(f'data.data_path {self.root} is not a directory.')
    self._strict = strict
    self._train_split = train_split
    self._eval_split = eval_split
    self._max = max_dataset_size
    self._mode = preprocess_mode
    self._crop = crop_size
    self._workers = max(4, 2 * (os.cpu_count() or 1))

  def _dir(self, side: str, split: str) -> Path:
    d = self.root / f'{split}{side}'
    if not d.is_dir():
      found = sorted(p.name for p in self.root.iterdir() if p.is_dir())
      raise DataError(f'No folder {d} (split {split!r}, side {side}); found: '
                      f'{", ".join(found) or "nothing"}. Expected DIR/trainA, DIR/trainB, '
                      'DIR/testA, DIR/testB (set data.train_split / eval_split for others).')
    return d

  def _map(self, fn, items):
    return folders.thread_map(fn, items, self._workers)

  @functools.lru_cache(maxsize=None)
  def images(self, side: str, split: str) -> tuple[folders.ImageInfo, ...]:
    """The readable images of one side of a split (headers and full decodes checked once)."""
    _check_side(side)
    d = self._dir(side, split)
    files = folders.images_under(d)
    if not files:
      raise DataError(f'{d} holds no images ({", ".join(folders.IMAGE_EXTENSIONS)}).')
    keys = sorted(files)
    if split == self._train_split and self._max > 0:
      keys = keys[:self._max]
    paths = [files[k] for k in keys]
    infos = self._map(folders.safe(folders.read_header), paths)
    good = [i for i in infos if not isinstance(i, folders.Failure)]
    checked = self._map(folders.safe(folders.check_decodes), [i.path for i in good])
    bad = [i for i in infos if isinstance(i, folders.Failure)]
    bad += [c for c in checked if isinstance(c, folders.Failure)]
    bad_paths = {f.path for f in bad}
    good = [i for i in good if i.path not in bad_paths]
    if bad:
      if self._strict:
        f = bad[0]
        raise DataError(f'Unreadable image {f.path}: {f.reason}. Remove or replace it, or set '
                        '--config.data.strict=False to skip unreadable images.')
      for f in bad:
        logging.warning('Skipping unreadable image %s: %s', f.path, f.reason)
      logging.warning('%s: skipped %d unreadable image(s); using %d of %d.', d, len(bad),
                      len(good), len(paths))
    if not good:
      raise DataError(f'No readable images in {d}.')
    preprocess.check_sizes(self._mode, self._crop,
                           [(str(i.path), i.height, i.width) for i in good], where=str(d))
    return tuple(good)

  def _format(self, side: str) -> tuple[int, int]:
    """(channels, bits) of a side over the train and eval splits."""
    c, b = 1, 8
    for split in dict.fromkeys([self._train_split, self._eval_split]):
      if not (self.root / f'{split}{side}').is_dir() and split != self._train_split:
        continue
      for i in self.images(side, split):
        c, b = max(c, i.channels), max(b, i.bits)
    return c, b

  @property
  def channels_a(self) -> int:
    return self._format('A')[0]

  @property
  def channels_b(self) -> int:
    return self._format('B')[0]

  def num_images(self, side: str, split: str) -> int:
    return len(self.images(side, split))

  def side_dataset(self, side: str, split: str, *, process_index: int = 0,
                   process_count: int = 1, shuffle_files: bool = False,
                   seed: int = 0) -> tf.data.Dataset:
    infos = list(self.images(side, split))
    start, stop = sources.process_shard(len(infos), process_index, process_count,
                                        what=str(self._dir(side, split)))
    infos = infos[start:stop]
    channels, bits = self._format(side)
    dtype = tf.uint16 if bits == 16 else tf.uint8
    codecs = {i.codec for i in infos}
    ds = tf.data.Dataset.from_tensor_slices({
        'path': [str(i.path) for i in infos],
        'codec': np.array([i.codec for i in infos], np.int32),
        'name': [i.path.stem for i in infos]})
    if shuffle_files:
      ds = ds.shuffle(len(infos), seed=seed, reshuffle_each_iteration=True)

    def load(ex):
      image = folders.decode_image(tf.io.read_file(ex['path']), ex['codec'], codecs, channels,
                                   dtype)
      return {'image': image, 'name': ex['name']}

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


# --- tfds cycle_gan/<name> ------------------------------------------------------------------

def extract_manual(manual_dir: str, name: str, data_dir: str = '') -> str:
  """A folder in the reference layout from ``manual_dir``: the folder itself (or its
  ``<name>/`` subfolder), or a ``<name>.zip`` extracted once next to the tfds data."""
  p = Path(os.path.expanduser(manual_dir))
  if p.is_dir():
    for cand in (p, p / name):
      if (cand / 'trainA').is_dir():
        return str(cand)
    zips = [z for z in (p / f'{name}.zip',) if z.is_file()]
    if not zips:
      raise DataError(f'data.manual_dir {p} holds neither trainA/ (or {name}/trainA/) nor '
                      f'{name}.zip.')
    p = zips[0]
  if not (p.is_file() and zipfile.is_zipfile(p)):
    raise DataError(f'data.manual_dir {p} is not a folder or a zip archive.')
  root = Path(os.path.expanduser(data_dir or os.environ.get(
      'TFDS_DATA_DIR', '~/tensorflow_datasets'))) / 'manual_extracted' / name
  done = root / '.extracted'
  if not done.exists():
    logging.info('Extracting %s into %s (once).', p, root)
    with zipfile.ZipFile(p) as z:
      z.extractall(root)
    done.touch()
  for cand in [root] + sorted(x for x in root.iterdir() if x.is_dir()):
    if (cand / 'trainA').is_dir():
      return str(cand)
  raise DataError(f'{p} holds no trainA/ folder (expected {name}/trainA, trainB, testA, testB).')


class TfdsCycleGanSource:
  """tfds ``cycle_gan/<name>``: splits trainA, trainB, testA, testB; RGB uint8 images."""

  channels_a = 3
  channels_b = 3

  def __init__(self, name: str, data_dir: str = '', train_split: str = 'train',
               max_dataset_size: int = -1):
    if name not in CYCLE_GAN_NAMES:
      raise DataError(f'Unknown cycle_gan dataset {name!r}; known: {", ".join(CYCLE_GAN_NAMES)}.')
    self.name = f'cycle_gan/{name}'
    self._data_dir = os.path.expanduser(data_dir) if data_dir else None
    self._train_split = train_split
    self._max = max_dataset_size

  @functools.cached_property
  def builder(self):
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    b = tfds.builder(self.name, data_dir=self._data_dir)
    if not b.is_prepared():
      logging.info('Downloading and preparing %s into %s (once).', self.name, b.data_dir)
      try:
        b.download_and_prepare()
      except Exception as e:  # pylint: disable=broad-except
        raise DataError(f'Could not download {self.name} ({type(e).__name__}: {e}). Offline, '
                        f'download {self.name.split("/")[1]}.zip elsewhere and pass '
                        '--config.data.manual_dir=PATH (the zip or its extracted folder).'
                        ) from e
    return b

  def _split(self, side: str, split: str) -> str:
    _check_side(side)
    s = f'{split}{side}'
    if s not in self.builder.info.splits:
      raise DataError(f'{self.name} has no split {s!r}; it has '
                      f'{", ".join(sorted(self.builder.info.splits))}.')
    return s

  def num_images(self, side: str, split: str) -> int:
    n = self.builder.info.splits[self._split(side, split)].num_examples
    return min(n, self._max) if split == self._train_split and self._max > 0 else n

  def side_dataset(self, side: str, split: str, *, process_index: int = 0,
                   process_count: int = 1, shuffle_files: bool = False,
                   seed: int = 0) -> tf.data.Dataset:
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
    n = self.num_images(side, split)
    spec = f'{self._split(side, split)}[:{n}]'
    if process_count > 1:
      spec = tfds.even_splits(spec, n=process_count, drop_remainder=True)[process_index]
    ds = self.builder.as_dataset(split=spec, shuffle_files=shuffle_files,
                                 read_config=tfds.ReadConfig(shuffle_seed=seed,
                                                             try_autocache=False))
    return ds.enumerate().map(lambda i, ex: {'image': ex['image'],
                                             'name': tf.strings.as_string(i)})


# --- Direction ------------------------------------------------------------------------------

class Swapped:
  """``source`` with A and B exchanged (``data.direction='BtoA'``)."""

  def __init__(self, source: UnpairedSource):
    self.source = source
    self.name = source.name
    self.channels_a = source.channels_b
    self.channels_b = source.channels_a

  @staticmethod
  def _other(side: str) -> str:
    _check_side(side)
    return 'B' if side == 'A' else 'A'

  def num_images(self, side: str, split: str) -> int:
    return self.source.num_images(self._other(side), split)

  def side_dataset(self, side: str, split: str, **kw) -> tf.data.Dataset:
    return self.source.side_dataset(self._other(side), split, **kw)


def paired_source(source: UnpairedSource) -> sources.PairedSource | None:
  """The paired dataset behind ``source`` (its A and B sides as in the paired set), or
  None for truly unpaired data (tfds cycle_gan, trainA/ trainB/ folders)."""
  inner = source.source if isinstance(source, Swapped) else source
  return inner.paired if isinstance(inner, PairedAsUnpaired) else None


def get_source(config: ml_collections.ConfigDict) -> UnpairedSource:
  """The unpaired source named by ``config.data.dataset`` (see the module docstring)."""
  d = config.data
  name = d.dataset
  if name.startswith('cycle_gan/'):
    short = name.split('/', 1)[1]
    if d.manual_dir:
      src = UnpairedFolderSource(extract_manual(d.manual_dir, short, d.data_dir),
                                 strict=d.strict, train_split=d.train_split,
                                 eval_split=d.eval_split, max_dataset_size=d.max_dataset_size,
                                 preprocess_mode=d.preprocess, crop_size=config.image_size)
    else:
      src = TfdsCycleGanSource(short, d.data_dir, d.train_split, d.max_dataset_size)
  elif name == 'unpaired_folder':
    src = UnpairedFolderSource(d.data_path, strict=d.strict, train_split=d.train_split,
                               eval_split=d.eval_split, max_dataset_size=d.max_dataset_size,
                               preprocess_mode=d.preprocess, crop_size=config.image_size)
  else:
    try:
      paired = sources.get_source(config)
    except DataError as e:
      raise DataError(f'{e} For CycleGAN also: cycle_gan/<name> ({", ".join(CYCLE_GAN_NAMES)})'
                      ' or unpaired_folder (--config.data.data_path=DIR with trainA/ trainB/).'
                      ) from e
    src = PairedAsUnpaired(paired, halves=bool(d.get('unpaired_halves', False)))
  if d.direction == 'BtoA':
    return Swapped(src)
  if d.direction != 'AtoB':
    raise DataError(f"data.direction must be 'AtoB' or 'BtoA', got {d.direction!r}")
  return src


# --- Pipeline -------------------------------------------------------------------------------

def _to_model_input(config, image, *, train: bool, seed=None) -> tf.Tensor:
  x = tf.image.convert_image_dtype(image, tf.float32)
  x, _ = preprocess.preprocess_pair(  # One image: an empty B side.
      x, x[..., :0], mode=config.data.preprocess, load_size=config.data.load_size,
      crop_size=config.image_size, flip=not config.data.no_flip, train=train, seed=seed,
      size_multiple=SIZE_MULTIPLE)
  return x * 2.0 - 1.0


def _options() -> tf.data.Options:
  opts = tf.data.Options()
  opts.deterministic = True
  opts.experimental_optimization.map_parallelization = True
  return opts


def side_stream(config: ml_collections.ConfigDict, source: UnpairedSource, side: str, *,
                start_example: int = 0, process_index: int = 0,
                process_count: int = 1) -> tf.data.Dataset:
  """Endless, shuffled, jittered float32 images of one side (unbatched)."""
  split = config.data.train_split
  side_seed = config.seed * 2 + SIDES.index(side)
  ds = source.side_dataset(side, split, process_index=process_index,
                           process_count=process_count, shuffle_files=True, seed=side_seed)
  if source.num_images(side, split) <= CACHE_MAX_EXAMPLES:
    ds = ds.cache()
  ds = ds.shuffle(config.data.shuffle_buffer, seed=side_seed, reshuffle_each_iteration=True)
  ds = ds.repeat().enumerate().skip(start_example)
  base_seed = tf.constant([side_seed, process_index], tf.int64)

  def prep(i, ex):
    seed = tf.random.experimental.stateless_fold_in(base_seed, i)
    return _to_model_input(config, ex['image'], train=True, seed=seed)

  return ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def train_dataset(config: ml_collections.ConfigDict, source: UnpairedSource,
                  per_process_batch: int, *, start_step: int = 0, process_index: int = 0,
                  process_count: int = 1) -> tf.data.Dataset:
  """Endless training batches {'A', 'B'} (float32, [-1, 1]); independent A and B streams."""
  kw = dict(start_example=start_step * per_process_batch, process_index=process_index,
            process_count=process_count)
  ds = tf.data.Dataset.zip({'A': side_stream(config, source, 'A', **kw),
                            'B': side_stream(config, source, 'B', **kw)})
  ds = ds.batch(per_process_batch, drop_remainder=True)
  k = max(1, config.get('steps_per_dispatch', 1))
  if k > 1:
    ds = ds.batch(k, drop_remainder=True)
  return ds.prefetch(max(1, config.data.prefetch)).with_options(_options())


def eval_dataset(config: ml_collections.ConfigDict, source: UnpairedSource, side: str,
                 batch_size: int, *, split: str | None = None, max_examples: int = -1
                 ) -> tf.data.Dataset:
  """One deterministic pass over one side of ``split`` (no jitter): {'image', 'name'}."""
  split = split or config.data.eval_split
  ds = source.side_dataset(side, split, shuffle_files=False, seed=config.seed)
  if max_examples > 0:
    ds = ds.take(max_examples)
  ds = ds.map(lambda ex: {'image': _to_model_input(config, ex['image'], train=False),
                          'name': ex['name']},
              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return ds.batch(batch_size).prefetch(2).with_options(_options())


def steps_per_epoch(config: ml_collections.ConfigDict, source: UnpairedSource) -> int:
  """max(|A|, |B|) images per epoch (the reference's UnalignedDataset), in batches."""
  split = config.data.train_split
  n = max(source.num_images('A', split), source.num_images('B', split))
  return max(1, n // config.batch_size)


def as_numpy(ds: tf.data.Dataset) -> Iterator[dict[str, np.ndarray]]:
  return ds.as_numpy_iterator()
