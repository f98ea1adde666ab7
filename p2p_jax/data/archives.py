"""Reading the pix2pix authors' aligned A|B releases: a folder, a tar or a zip archive.

A release holds ``train/``, ``val/`` and ``test/`` folders (possibly under a top folder such
as ``facades/``) of aligned images, the left half A and the right half B.
:class:`AlignedPairs` indexes the pairs of a release per split and yields them, cut in
two, as PIL images. No TensorFlow.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

from PIL import Image

from p2p_jax.data import image_files
from p2p_jax.errors import DataError

SPLITS = ('train', 'val', 'test')


def _split_of(relpath: str) -> tuple[str, str] | None:
  """'facades/train/1.jpg' -> ('train', '1'); None if not an image directly in a split dir."""
  parts = [p for p in relpath.replace('\\', '/').split('/') if p not in ('', '.')]
  if len(parts) < 2 or parts[-2] not in SPLITS or not image_files.is_image_name(parts[-1]):
    return None
  return parts[-2], os.path.splitext(parts[-1])[0]


def _top_dir(relpaths: Iterable[str]) -> str | None:
  for p in relpaths:
    parts = [q for q in p.split('/') if q not in ('', '.')]
    if len(parts) >= 3:
      return parts[-3]
  return None


class AlignedPairs:
  """Aligned A|B images in split folders, from a directory, a tar or a zip archive."""

  def __init__(self, path: Path, kind: str):
    self.path, self.kind = path, kind  # kind: 'dir', 'tar', 'zip'
    self._index: dict[str, list[tuple[str, str]]] | None = None  # split -> [(name, member)]

  def __repr__(self):
    return f'{self.kind} {self.path}'

  def _members(self) -> Iterator[str]:
    if self.kind == 'dir':
      for dirpath, _, files in os.walk(self.path):
        rel = os.path.relpath(dirpath, self.path)
        for f in files:
          yield f if rel == '.' else f'{rel}/{f}'
    elif self.kind == 'zip':
      with zipfile.ZipFile(self.path) as zf:
        yield from (i.filename for i in zf.infolist() if not i.is_dir())
    else:
      with tarfile.open(self.path, 'r:*') as tf_:
        for m in tf_:
          if m.isfile():
            yield m.name

  def index(self) -> dict[str, list[tuple[str, str]]]:
    if self._index is None:
      index: dict[str, list[tuple[str, str]]] = {}
      try:
        for member in self._members():
          hit = _split_of(member)
          if hit:
            index.setdefault(hit[0], []).append((hit[1], member))
      except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f'Cannot read the archive {self.path}: {e}. Download it again, or '
                        'pass its extracted folder as --config.data.manual_dir.') from e
      self._index = {s: sorted(v) for s, v in index.items()}
    return self._index

  def splits(self) -> list[str]:
    return [s for s in SPLITS if self.index().get(s)]

  def top_dir(self) -> str | None:
    return _top_dir(m for v in self.index().values() for _, m in v[:1])

  def items(self, split: str) -> Iterator[tuple[str, Callable[[], tuple]]]:
    """(name, load) per pair in split; load() -> (A PIL image, B PIL image)."""
    wanted = dict((m, n) for n, m in self.index().get(split, []))
    if self.kind == 'tar':
      with tarfile.open(self.path, 'r:*') as tf_:  # One streaming pass.
        for m in tf_:
          if m.isfile() and m.name in wanted:
            data = tf_.extractfile(m).read()
            yield wanted[m.name], (lambda d=data: split_aligned(d))
    elif self.kind == 'zip':
      with zipfile.ZipFile(self.path) as zf:
        for member, name in sorted(wanted.items(), key=lambda kv: kv[1]):
          data = zf.read(member)
          yield name, (lambda d=data: split_aligned(d))
    else:
      for member, name in sorted(wanted.items(), key=lambda kv: kv[1]):
        path = self.path / member
        yield name, (lambda p=path: split_aligned(p.read_bytes()))


def open_rgb(data: bytes) -> Image.Image:
  im = Image.open(io.BytesIO(data))
  im.load()  # Raises for truncated / corrupt data.
  return im if im.mode == 'RGB' else im.convert('RGB')


def split_aligned(data: bytes) -> tuple[Image.Image, Image.Image]:
  im = open_rgb(data)
  w, h = im.size
  half = w // 2
  if half < 1:
    raise ValueError(f'{w}x{h} is too narrow to be an A|B pair')
  return im.crop((0, 0, half, h)), im.crop((half, 0, 2 * half, h))


def archive_kind(path: Path) -> str | None:
  name = path.name.lower()
  if name.endswith('.zip'):
    return 'zip'
  if name.endswith(('.tar.gz', '.tgz', '.tar')):
    return 'tar'
  return None


def listing(path: Path, limit: int = 8) -> str:
  names = sorted(p.name + ('/' if p.is_dir() else '') for p in path.iterdir()
                 if not p.name.startswith('.'))
  more = f', ... ({len(names)} entries)' if len(names) > limit else ''
  return ', '.join(names[:limit]) + more

