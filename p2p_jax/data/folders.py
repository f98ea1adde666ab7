"""Your own paired images: a folder read directly with tf.data (``configs/custom.py``).

``--config.data.data_path=DIR`` in any of these layouts (``SPLIT`` is train, val, test or
any name given as ``data.train_split`` / ``data.eval_split``)::

  (a) aligned pairs     DIR/SPLIT/x.jpg            one image per pair: left half A, right B
  (b) paired folders    DIR/SPLIT/A/x.png  + DIR/SPLIT/B/x.png
  (c) reference style   DIR/A/SPLIT/x.png  + DIR/B/SPLIT/x.png   (combine_A_and_B.py input)

In (b) and (c), A and B are matched by path relative to their folder without the
extension (``A/x.png`` pairs with ``B/x.jpg``); subfolders are allowed. Any size
(non-square too), PNG, JPEG, TIFF, BMP or WebP, 8 or 16 bits, grayscale or colour.

Channels: a side is 1-channel if every image on it (over all splits) is grayscale, else
3-channel (grayscale images on a colour side are repeated to RGB; alpha is dropped). Bit
depth: a side is uint16 if any of its images is 16-bit (8-bit ones are scaled by 257),
else uint8. 16-bit grayscale PNG/TIFF and 16-bit colour PNG keep full precision; 16-bit
colour TIFF is read at 8 bits (a Pillow limit). 32-bit float images are not supported.

Why not a tfds builder: a custom folder changes between runs, and a builder would copy it
into TFRecords (twice the disk, a stale copy to invalidate, a rebuild after every edit).
Instead the file list is read and checked at start-up and the images are decoded on the fly
by ``tf.data`` in parallel: PNG and JPEG with TensorFlow's decoders (no GIL, 16-bit colour
PNG), TIFF/BMP/other through Pillow in ``tf.numpy_function``.

Checks before training (each names the file and says what to do):

* every image is opened and fully decoded once with Pillow, in a thread pool; an
  unreadable, truncated or unsupported file is skipped with a warning naming it, then a
  count (``data.strict=True``: DataError instead);
* DataError for: no data_path, a missing folder or split, an empty split, a file without
  its partner, two files with one name, A and B of different sizes, an image smaller than
  the crop (preprocess='crop').
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import threading
import time
from pathlib import Path

from absl import logging
import ml_collections
import numpy as np
from PIL import Image
import tensorflow as tf

from p2p_jax.data import image_files, preprocess, sources
from p2p_jax.errors import DataError

STANDARD_SPLITS = ('train', 'val', 'test')

_GRAY_MODES = ('1', 'L', 'LA', 'I', 'I;16', 'I;16L', 'I;16B', 'I;16N')
_COLOR_MODES = ('RGB', 'RGBA', 'RGBX', 'P', 'PA', 'CMYK', 'YCbCr', 'LAB', 'HSV')
_16BIT_MODES = ('I', 'I;16', 'I;16L', 'I;16B', 'I;16N')
CODEC_PNG, CODEC_JPEG, CODEC_PIL = 0, 1, 2

LAYOUT_HELP = (
    'Expected one of:\n'
    '  (a) DIR/{split}/*.png|jpg|...        aligned pairs, left half A, right half B\n'
    '  (b) DIR/{split}/A/x.png + DIR/{split}/B/x.png   matched by file name\n'
    '  (c) DIR/A/{split}/x.png + DIR/B/{split}/x.png   matched by file name')


@dataclasses.dataclass(frozen=True)
class ImageInfo:
  """What the header of one file says."""
  path: Path
  height: int
  width: int
  channels: int  # 1 or 3 after conversion.
  bits: int  # 8 or 16.
  codec: int  # CODEC_PNG, CODEC_JPEG or CODEC_PIL.


@dataclasses.dataclass(frozen=True)
class Pair:
  """One example: A and B files (the same file for an aligned pair)."""
  name: str  # Relative path without extension, e.g. 'x' or 'sub/x'.
  a: ImageInfo
  b: ImageInfo
  aligned: bool

  @property
  def size(self) -> tuple[int, int]:
    """(height, width) of each side."""
    return (self.a.height, self.a.width // 2) if self.aligned else (self.a.height, self.a.width)


def _images_under(d: Path, skip: tuple[str, ...] = ()) -> dict[str, Path]:
  """rel stem -> path of every image under d (see :func:`image_files.list_images`)."""
  out: dict[str, Path] = {}
  dups: list[tuple[Path, Path]] = []
  for path in image_files.list_images(d, skip):
    stem = os.path.splitext(os.path.relpath(path, d))[0].replace(os.sep, '/')
    if stem in out:
      dups.append((out[stem], path))
    out[stem] = path
  if dups:
    x, y = dups[0]
    raise DataError(f'{x} and {y} have the same name; pairs are matched by name without '
                    f'extension, so keep one of them ({len(dups)} such clash(es) in {d}).')
  return out


def _png_bit_depth(path: Path) -> int:
  with open(path, 'rb') as f:
    head = f.read(26)
  return head[24] if len(head) >= 25 and head[12:16] == b'IHDR' else 8


def _read_header(path: Path) -> ImageInfo:
  """Opens the header only (cheap); raises on a non-image or unsupported mode."""
  with Image.open(path) as im:
    mode, (w, h), fmt = im.mode, im.size, im.format
  if mode in _GRAY_MODES:
    channels = 1
  elif mode in _COLOR_MODES:
    channels = 3
  else:
    raise ValueError(f'unsupported image mode {mode!r} (save it as 8- or 16-bit '
                     'grayscale or RGB)')
  bits = 16 if mode in _16BIT_MODES else 8
  if fmt == 'PNG':
    codec = CODEC_PNG
    if _png_bit_depth(path) == 16:
      bits = 16
  elif fmt == 'JPEG' and mode in ('L', 'RGB'):
    codec = CODEC_JPEG
  else:
    codec = CODEC_PIL
  return ImageInfo(path, h, w, channels, bits, codec)


def _check_decodes(path: Path) -> None:
  """Fully decodes the file once; raises if it is truncated or corrupt."""
  with Image.open(path) as im:
    im.load()


def _pil_decode(data: bytes, channels: int, dtype: np.dtype) -> np.ndarray:
  """Any Pillow-readable image -> [H, W, channels] of dtype (uint8 or uint16)."""
  import io  # pylint: disable=import-outside-toplevel
  with Image.open(io.BytesIO(data)) as im:
    im.load()
    if im.mode in _16BIT_MODES:
      x = np.clip(np.asarray(im).astype(np.int64), 0, 65535).astype(np.uint16)
      x = x[..., None]
      if channels == 3:
        x = np.repeat(x, 3, axis=-1)
    else:
      x = np.asarray(im.convert('L' if channels == 1 else 'RGB'))
      x = x.reshape(x.shape[0], x.shape[1], channels)
  if dtype == np.uint16 and x.dtype == np.uint8:
    x = x.astype(np.uint16) * 257
  elif dtype == np.uint8 and x.dtype == np.uint16:
    x = (x // 257).astype(np.uint8)
  return np.ascontiguousarray(x)


def _decode_tf(contents: tf.Tensor, codec: tf.Tensor, codecs: set[int], channels: int,
               dtype: tf.DType) -> tf.Tensor:
  """Decodes one file in the tf.data graph with the decoder its header asked for."""

  def png():
    return tf.io.decode_png(contents, channels=channels, dtype=dtype)

  def jpeg():
    x = tf.io.decode_jpeg(contents, channels=channels)
    return tf.cast(x, tf.uint16) * 257 if dtype == tf.uint16 else x

  def pil():
    return tf.numpy_function(
        lambda d: _pil_decode(d, channels, dtype.as_numpy_dtype), [contents], dtype,
        stateful=False)

  branches = {CODEC_PNG: png, CODEC_JPEG: jpeg, CODEC_PIL: pil}
  used = sorted(codecs)
  if len(used) == 1:
    x = branches[used[0]]()
  else:
    index = tf.reduce_sum(  # Position of codec in `used`.
        tf.cast(tf.less(tf.constant(used, tf.int32), codec), tf.int32))
    x = tf.switch_case(index, [branches[c] for c in used])
  x = tf.ensure_shape(x, [None, None, channels])
  return x


class FolderSource:
  """A custom paired folder as a :class:`p2p_jax.data.sources.PairedSource`."""

  name = 'custom'

  def __init__(self, data_path: str, *, strict: bool = False, train_split: str = 'train',
               eval_split: str = 'test', max_dataset_size: int = -1,
               preprocess_mode: str = 'resize_and_crop', crop_size: int = 256,
               workers: int | None = None):
    if not data_path:
      raise DataError('The custom dataset needs a folder: pass --config.data.data_path=DIR.\n'
                      + LAYOUT_HELP.format(split='train'))
    self.root = Path(os.path.abspath(os.path.expanduser(data_path)))
    if not self.root.is_dir():
      raise DataError(f'data.data_path {self.root} is not a directory.\n'
                      + LAYOUT_HELP.format(split='train'))
    self._strict = strict
    self._train_split = train_split
    self._eval_split = eval_split
    self._max = max_dataset_size
    self._mode = preprocess_mode
    self._crop = crop_size
    self._workers = workers or max(4, 2 * (os.cpu_count() or 1))
    self._listed: dict[str, list[Pair]] = {}
    self._header_failures: dict[str, tuple[list[_Failure], int]] = {}
    self._checked: dict[str, list[Pair]] = {}
    self._sides: tuple[int, int, int, int] | None = None
    self._lock = threading.Lock()

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'FolderSource':
    d = config.data
    return cls(d.data_path, strict=d.strict, train_split=d.train_split,
               eval_split=d.eval_split, max_dataset_size=d.max_dataset_size,
               preprocess_mode=d.preprocess, crop_size=config.image_size)

  # ------------------------------------------------------------------ listing (headers)

  def splits(self) -> list[str]:
    """Split names found under the root (standard ones first)."""
    names = set()
    for d in [self.root] + [self.root / s for s in ('A', 'B')]:
      if d.is_dir():
        names.update(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith('.'))
    names -= {'A', 'B'}
    found = [s for s in names if self._layout(s)[0] is not None]
    return sorted(found, key=lambda s: (s not in STANDARD_SPLITS,
                                        STANDARD_SPLITS.index(s) if s in STANDARD_SPLITS
                                        else 0, s))

  def _layout(self, split: str):
    r = self.root
    if (r / split / 'A').is_dir() and (r / split / 'B').is_dir():
      return 'b', r / split / 'A', r / split / 'B'
    if (r / 'A' / split).is_dir() and (r / 'B' / split).is_dir():
      return 'c', r / 'A' / split, r / 'B' / split
    if (r / split).is_dir():
      return 'a', r / split, None
    return None, None, None

  def _list(self, split: str) -> list[Pair]:
    """Pairs of a split from file names and headers; unreadable headers are skipped."""
    with self._lock:
      if split in self._listed:
        return self._listed[split]
    layout, da, db = self._layout(split)
    if layout is None:
      found = self.splits()
      raise DataError(
          f'No {split!r} split in {self.root} (found: {", ".join(found) or "none"}). '
          + (f'Set --config.data.train_split / eval_split to one of them.\n' if found else '\n')
          + LAYOUT_HELP.format(split=split))
    if layout == 'a':
      if (da / 'A').is_dir() != (da / 'B').is_dir():
        have = 'A' if (da / 'A').is_dir() else 'B'
        raise DataError(f'{da} has {have}/ but no {"B" if have == "A" else "A"}/; paired '
                        'folders need both.\n' + LAYOUT_HELP.format(split=split))
      files = _images_under(da)
      if not files:
        raise DataError(f'Split folder {da} holds no images '
                        f'({", ".join(image_files.IMAGE_EXTENSIONS)}).\n'
                        + LAYOUT_HELP.format(split=split))
      keys = sorted(files)
    else:
      fa, fb = _images_under(da), _images_under(db)
      if not fa and not fb:
        raise DataError(f'{da} and {db} hold no images '
                        f'({", ".join(image_files.IMAGE_EXTENSIONS)}).')
      only_a, only_b = sorted(set(fa) - set(fb)), sorted(set(fb) - set(fa))
      if only_a or only_b:
        path, other = (fa[only_a[0]], db) if only_a else (fb[only_b[0]], da)
        n = len(only_a) + len(only_b)
        raise DataError(
            f'{path} has no partner in {other} (expected a file named '
            f'{Path(os.path.relpath(path, da if only_a else db)).with_suffix(".*")}); '
            f'{n} unmatched file(s) in all. Add the missing partners or remove the '
            'unmatched files.')
      if layout == 'b':
        loose = [p for p in (self.root / split).iterdir()
                 if p.is_file() and image_files.is_image_name(p.name)]
        if loose:
          logging.warning('Ignoring %d image(s) directly in %s (e.g. %s): with A/ and B/ '
                          'folders present, only those are read.', len(loose),
                          self.root / split, loose[0].name)
      keys = sorted(fa)
    if split == self._train_split and self._max > 0:
      keys = keys[:self._max]

    paths = ([files[k] for k in keys] if layout == 'a'
             else [fa[k] for k in keys] + [fb[k] for k in keys])
    infos = dict(zip(paths, self._map(_safe(_read_header), paths)))
    pairs, bad = [], []
    for k in keys:
      ia = infos[files[k] if layout == 'a' else fa[k]]
      ib = ia if layout == 'a' else infos[fb[k]]
      errs = [x for x in (ia, ib) if isinstance(x, _Failure)]
      if errs:
        bad.extend(errs)
        continue
      if layout == 'a':
        if ia.width < 2:
          bad.append(_Failure(ia.path, 'too narrow to be an A|B pair'))
          continue
      elif (ia.height, ia.width) != (ib.height, ib.width):
        raise DataError(
            f'A and B differ in size: {ia.path} is {ia.width}x{ia.height} but {ib.path} is '
            f'{ib.width}x{ib.height} (WxH). Resize one of them so the pair lines up.')
      pairs.append(Pair(k, ia, ib, aligned=layout == 'a'))
    with self._lock:
      self._listed[split] = pairs
      self._header_failures[split] = (bad, len(keys))
    return pairs

  def _map(self, fn, items):
    return thread_map(fn, items, self._workers)

  def _report(self, split: str, bad: list['_Failure'], total: int, kept: int) -> None:
    if not bad:
      return
    if self._strict:
      f = bad[0]
      raise DataError(f'Unreadable image {f.path}: {f.reason}. Remove or replace it, or set '
                      '--config.data.strict=False to skip unreadable images.')
    for f in bad:
      logging.warning('Skipping unreadable image %s: %s', f.path, f.reason)
    more = ', ...' if len(bad) > 10 else ''
    logging.warning('Split %r of %s: skipped %d unreadable image(s); using %d of %d pairs. '
                    'Skipped: %s%s', split, self.root, len(bad), kept, total,
                    ', '.join(str(f.path) for f in bad[:10]), more)

  def pairs(self, split: str) -> list[Pair]:
    """The pairs of ``split`` whose images fully decode (checked once, in parallel)."""
    with self._lock:
      if split in self._checked:
        return self._checked[split]
    listed = self._list(split)
    files = sorted({p.a.path for p in listed} | {p.b.path for p in listed})
    t0 = time.time()
    results = dict(zip(files, self._map(_safe(_check_decodes), files)))
    bad = [r for r in results.values() if isinstance(r, _Failure)]
    logging.info('Checked %d images of split %r in %s in %.1f s.', len(files), split,
                 self.root, time.time() - t0)
    bad_paths = {f.path for f in bad}
    pairs = [p for p in listed if p.a.path not in bad_paths and p.b.path not in bad_paths]
    header_bad, total = self._header_failures[split]
    self._report(split, header_bad + bad, total, len(pairs))
    if not pairs:
      raise DataError(f'No readable pairs in split {split!r} of {self.root}.')
    ca, cb, ba, bb = self._side_formats()
    layout, da, db = self._layout(split)
    where = (f'aligned A|B images in {da}' if layout == 'a' else f'{da} + {db}')
    logging.info('Custom data, split %r: %d pairs from %s; A: %d channel(s) %d-bit, B: %d '
                 'channel(s) %d-bit.', split, len(pairs), where, ca, ba, cb, bb)
    with self._lock:
      self._checked[split] = pairs
    return pairs

  # ------------------------------------------------------------------ PairedSource

  def _side_formats(self) -> tuple[int, int, int, int]:
    """(channels_a, channels_b, bits_a, bits_b) over train, eval and standard splits."""
    if self._sides is None:
      names = [self._train_split, self._eval_split] + list(STANDARD_SPLITS)
      seen, ca, cb, ba, bb = set(), 1, 1, 8, 8
      for s in names:
        if s in seen or self._layout(s)[0] is None:
          continue
        seen.add(s)
        try:
          listed = self._list(s)
        except DataError as e:
          if s in (self._train_split, self._eval_split):
            raise
          logging.warning('Ignoring split %r of %s: %s', s, self.root, e)
          continue
        for p in listed:
          ca, cb = max(ca, p.a.channels), max(cb, p.b.channels)
          ba, bb = max(ba, p.a.bits), max(bb, p.b.bits)
      if not seen:
        self._list(self._train_split)  # Raises the 'no split' DataError.
      self._sides = (ca, cb, ba, bb)
    return self._sides

  @property
  def channels_a(self) -> int:
    return self._side_formats()[0]

  @property
  def channels_b(self) -> int:
    return self._side_formats()[1]

  @property
  def dtype_a(self) -> tf.DType:
    return tf.uint16 if self._side_formats()[2] == 16 else tf.uint8

  @property
  def dtype_b(self) -> tf.DType:
    return tf.uint16 if self._side_formats()[3] == 16 else tf.uint8

  def num_examples(self, split: str) -> int:
    return len(self.pairs(split))

  def as_dataset(self, split: str, *, process_index: int = 0, process_count: int = 1,
                 shuffle_files: bool = False, seed: int = 0) -> tf.data.Dataset:
    pairs = self.pairs(split)
    preprocess.check_sizes(self._mode, self._crop,
                           [(str(p.a.path), *p.size) for p in pairs], where='')
    ca, cb, _, _ = self._side_formats()
    da, db = self.dtype_a, self.dtype_b
    start, stop = sources.process_shard(len(pairs), process_index, process_count,
                                        f'Split {split!r} of {self.root}')
    pairs = pairs[start:stop]
    aligned = pairs[0].aligned
    codecs_a = {p.a.codec for p in pairs}
    codecs_b = {p.b.codec for p in pairs}
    ds = tf.data.Dataset.from_tensor_slices({
        'path_a': [str(p.a.path) for p in pairs],
        'path_b': [str(p.b.path) for p in pairs],
        'codec_a': np.array([p.a.codec for p in pairs], np.int32),
        'codec_b': np.array([p.b.codec for p in pairs], np.int32),
        'name': [p.name for p in pairs],
    })
    if shuffle_files:
      ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)

    def load(ex):
      if aligned:
        ab = _decode_tf(tf.io.read_file(ex['path_a']), ex['codec_a'], codecs_a, ca, da)
        half = tf.shape(ab)[1] // 2
        a, b = ab[:, :half], ab[:, half:2 * half]
      else:
        a = _decode_tf(tf.io.read_file(ex['path_a']), ex['codec_a'], codecs_a, ca, da)
        b = _decode_tf(tf.io.read_file(ex['path_b']), ex['codec_b'], codecs_b, cb, db)
      return {'A': a, 'B': b, 'name': ex['name']}

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


@dataclasses.dataclass(frozen=True)
class _Failure:
  path: Path
  reason: str


def _safe(fn):
  def run(path):
    try:
      return fn(path)
    except Exception as e:  # pylint: disable=broad-except
      return _Failure(path, f'{type(e).__name__}: {e}')
  return run


@sources.register('custom')
def _make_source(config: ml_collections.ConfigDict) -> FolderSource:
  return FolderSource.from_config(config)


# Public names for single-image folders (p2p_jax/data/unpaired.py reads CycleGAN's
# trainA/ trainB/ layout with the same listing, checks and decoders).
images_under = _images_under
read_header = _read_header
check_decodes = _check_decodes
decode_image = _decode_tf
Failure = _Failure
safe = _safe


def thread_map(fn, items, workers: int) -> list:
  """``[fn(x) for x in items]`` on up to ``workers`` threads (image headers and decodes)."""
  if len(items) <= 1:
    return [fn(x) for x in items]
  with concurrent.futures.ThreadPoolExecutor(workers) as ex:
    return list(ex.map(fn, items))
