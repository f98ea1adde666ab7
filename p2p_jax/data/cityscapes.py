"""Cityscapes from the official releases, combined into pix2pix pairs. No TensorFlow.

The pix2pix cityscapes pairs are a Cityscapes photo (A) beside its colour label map (B).
Its licence forbids redistribution, so the user downloads ``leftImg8bit_trainvaltest.zip``
and ``gtFine_trainvaltest.zip`` (or extracts them) and :class:`CityscapesRaw` pairs them
like the reference's ``prepare_cityscapes_dataset.py``: both resized to 256x256, the
photo bicubic and the label map nearest-neighbour (so class colours stay exact).
"""

from __future__ import annotations

import contextlib
import os
import zipfile
from pathlib import Path

from PIL import Image

from p2p_jax.data import archives
from p2p_jax.errors import DataError

URL = 'https://www.cityscapes-dataset.com/downloads/'
SIZE = 256  # Side the photo and label map are resized to (reference script).


def instructions(where: str = '') -> str:
  return (
      'Cityscapes cannot be downloaded automatically (its licence requires an account).\n'
      f'  1. Register at https://www.cityscapes-dataset.com/ and download from {URL}\n'
      '     leftImg8bit_trainvaltest.zip (11 GB, the photos) and gtFine_trainvaltest.zip '
      '(241 MB, the label maps).\n'
      f'  2. Put both zips (or the leftImg8bit/ and gtFine/ folders they extract to) in one '
      f'directory{" such as " + where if where else ""}.\n'
      '  3. Pass it as --config.data.manual_dir=DIR. The first run pairs photo (A) and colour '
      'label map (B) at 256x256 into the tfds data_dir (2975 train, 500 val pairs); later '
      'runs need no manual_dir.\n'
      'An already combined A|B cityscapes folder or cityscapes.tar.gz is accepted too.')


class CityscapesRaw:
  """The official leftImg8bit + gtFine releases (zips or extracted folders)."""

  kind = 'cityscapes'

  def __init__(self, photos: Path, labels: Path):
    self.photos, self.labels = photos, labels
    self._index: dict[str, list[tuple[str, str, str]]] | None = None

  def __repr__(self):
    return f'cityscapes {self.photos} + {self.labels}'

  @staticmethod
  def _list(path: Path) -> list[str]:
    if path.is_dir():
      root = path.parent  # Member names start with 'leftImg8bit/' or 'gtFine/'.
      return [os.path.relpath(os.path.join(d, f), root).replace(os.sep, '/')
              for d, _, fs in os.walk(path) for f in fs]
    try:
      with zipfile.ZipFile(path) as zf:
        return zf.namelist()
    except (zipfile.BadZipFile, OSError) as e:
      raise DataError(f'Cannot read {path}: {e}. Download it again.\n'
                      + instructions()) from e

  def index(self) -> dict[str, list[tuple[str, str, str]]]:
    if self._index is None:
      def ids(members, suffix):
        out = {}
        for m in members:
          parts = m.split('/')
          if len(parts) >= 4 and parts[-3] in ('train', 'val') and m.endswith(suffix):
            out.setdefault(parts[-3], {})[parts[-1][:-len(suffix)]] = m
        return out
      photos = ids(self._list(self.photos), '_leftImg8bit.png')
      labels = ids(self._list(self.labels), '_gtFine_color.png')
      index = {}
      for split in ('train', 'val'):
        p, l = photos.get(split, {}), labels.get(split, {})
        missing = sorted(set(p) ^ set(l))
        if missing:
          m = missing[0]
          has, lacks = (self.photos, self.labels) if m in p else (self.labels, self.photos)
          raise DataError(
              f'Cityscapes {split} image {m!r} is in {has} but its partner is missing from '
              f'{lacks} ({len(missing)} unmatched in all). Use the complete '
              'leftImg8bit_trainvaltest and gtFine_trainvaltest releases.')
        index[split] = sorted((k, p[k], l[k]) for k in p)
      self._index = index
    return self._index

  def splits(self) -> list[str]:
    return [s for s in ('train', 'val') if self.index().get(s)]

  def top_dir(self):
    return None

  def items(self, split: str):
    with _reader(self.photos) as read_p, _reader(self.labels) as read_l:
      for name, p, l in self.index().get(split, []):
        yield name, (lambda a=read_p(p), b=read_l(l): _combine(a, b))


@contextlib.contextmanager
def _reader(path: Path):
  """Yields member -> bytes for an extracted folder or a zip ('leftImg8bit/train/...')."""
  if path.is_dir():
    yield lambda member: (path.parent / member).read_bytes()
  else:
    with zipfile.ZipFile(path) as zf:
      yield zf.read


def _combine(photo: bytes, label: bytes) -> tuple[Image.Image, Image.Image]:
  size = (SIZE, SIZE)
  a = archives.open_rgb(photo).resize(size, Image.Resampling.BICUBIC)
  b = archives.open_rgb(label).resize(size, Image.Resampling.NEAREST)  # Keep class colours exact.
  return a, b


def find_raw(d: Path) -> CityscapesRaw | DataError | None:
  def find(stem):
    for cand in (d / f'{stem}_trainvaltest.zip', d / stem, d / f'{stem}_trainvaltest' / stem):
      if cand.exists():
        return cand
    return None
  photos, labels = find('leftImg8bit'), find('gtFine')
  if photos and labels:
    return CityscapesRaw(photos, labels)
  if photos or labels:
    have, lack = ((photos, 'gtFine_trainvaltest.zip (or gtFine/)') if photos
                  else (labels, 'leftImg8bit_trainvaltest.zip (or leftImg8bit/)'))
    return DataError(f'{d} holds {have.name} but not {lack}.\n' + instructions(str(d)))
  return None
