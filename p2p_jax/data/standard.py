"""The pix2pix authors' paired datasets, as one tfds builder with a config per dataset.

``p2p_paired/<name>`` for ``name`` in facades, cityscapes, maps, edges2shoes,
edges2handbags, night2day. Each release is a ``<name>.tar.gz`` of aligned ``A|B`` JPEGs
(left half A, right half B) in ``train/``, ``val/``, ``test/`` folders; the builder cuts
every pair in two at prepare time and stores ``{'A', 'B', 'name'}`` examples.

Where the data comes from, in order:

1. already prepared under ``data_dir`` (``config.data.data_dir``; '' = tfds default):
   nothing is read again. Delete ``<data_dir>/p2p_paired/<name>`` to rebuild.
2. ``config.data.manual_dir``: the downloaded ``<name>.tar.gz`` (or ``.tar``/``.zip``), its
   extracted folder (``train/`` ... or ``<name>/train/`` ...), or a folder holding the
   archive. Cityscapes also accepts the official ``leftImg8bit_trainvaltest.zip`` and
   ``gtFine_trainvaltest.zip`` (or their extracted ``leftImg8bit/`` and ``gtFine/``) and
   combines photo (A) and colour label map (B) itself, like the reference's
   ``prepare_cityscapes_dataset.py`` (256×256, labels resized nearest-neighbour).
3. a download from :data:`BASE_URL` (not for cityscapes, whose licence forbids it).

Used through :class:`StandardSource` (registered for the six names), or directly::

  builder = P2pPaired(config='facades', data_dir=..., manual_path='facades.tar.gz')
  builder.download_and_prepare()
"""

from __future__ import annotations

import collections
import contextlib
import concurrent.futures
import dataclasses
import io
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Iterator

from absl import logging
from etils import epath
import ml_collections
from PIL import Image
import tensorflow as tf
import tensorflow_datasets as tfds

from p2p_jax.data import preprocess
from p2p_jax.data import sources
from p2p_jax.data.sources import DataError

BASE_URL = 'http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/'
SPLITS = ('train', 'val', 'test')
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
CITYSCAPES_URL = 'https://www.cityscapes-dataset.com/downloads/'
CITYSCAPES_SIZE = 256  # Side the photo and label map are resized to (reference script).


@dataclasses.dataclass(eq=False)
class P2pPairedConfig(tfds.core.BuilderConfig):
  """One standard dataset."""
  archive: str = ''  # '<name>.tar.gz' on BASE_URL.
  auto_download: bool = True  # False: licence forbids it (cityscapes).
  side_a: str = ''  # What the left half (A) shows.
  side_b: str = ''  # What the right half (B) shows.
  paper_direction: str = 'AtoB'  # Direction of the paper's main task.
  splits: tuple[tuple[str, int], ...] = ()  # (split, pairs) of the official release.
  encoding: str = 'png'  # How A and B are stored: 'png' (lossless) or 'jpeg' (q 95).
  homepage: str = ''
  notes: str = ''

  @property
  def url(self) -> str:
    return BASE_URL + self.archive


def _cfg(name, **kw) -> P2pPairedConfig:
  return P2pPairedConfig(name=name, archive=f'{name}.tar.gz', description=kw['notes'], **kw)


BUILDER_CONFIGS = (
    _cfg('facades', side_a='photo', side_b='label map (12 colour-coded classes)',
         paper_direction='BtoA', splits=(('train', 400), ('val', 100), ('test', 106)),
         homepage='https://cmp.felk.cvut.cz/~tylecr1/facade/',
         notes='CMP Facades: labels→photo (BtoA). 256×256 per side.'),
    _cfg('cityscapes', side_a='photo', side_b='colour semantic label map',
         paper_direction='BtoA', splits=(('train', 2975), ('val', 500)), auto_download=False,
         homepage='https://www.cityscapes-dataset.com/',
         notes='Cityscapes: labels→photo (BtoA), evaluated on val. 256×256 per side. '
               'Licence: download it yourself (see the error message / docs).'),
    _cfg('maps', side_a='aerial photo', side_b='Google map', paper_direction='AtoB',
         splits=(('train', 1096), ('val', 1098)),
         homepage='https://phillipi.github.io/pix2pix/',
         notes='Maps: aerial→map (AtoB) and map→aerial (BtoA), evaluated on val. '
               '600×600 per side in the release.'),
    _cfg('edges2shoes', side_a='edge map', side_b='photo', paper_direction='AtoB',
         splits=(('train', 49825), ('val', 200)), encoding='jpeg',
         homepage='https://vision.cs.utexas.edu/projects/finegrained/utzap50k/',
         notes='UT Zappos50K shoes with HED edges: edges→photo (AtoB). 256×256 per side.'),
    _cfg('edges2handbags', side_a='edge map', side_b='photo', paper_direction='AtoB',
         splits=(('train', 138567), ('val', 200)), encoding='jpeg',
         homepage='https://github.com/junyanz/iGAN',
         notes='Amazon handbags (iGAN) with HED edges: edges→photo (AtoB). 256×256 per side.'),
    _cfg('night2day', side_a='night photo', side_b='day photo', paper_direction='BtoA',
         splits=(('train', 17823), ('val', 10), ('test', 2287)), encoding='jpeg',
         homepage='http://transattr.cs.brown.edu/',
         notes='Transient Attributes webcams: day→night is BtoA. 256×256 per side.'),
)
CONFIGS = {c.name: c for c in BUILDER_CONFIGS}
NAMES = tuple(CONFIGS)


def cityscapes_instructions(where: str = '') -> str:
  return (
      'Cityscapes cannot be downloaded automatically (its licence requires an account).\n'
      f'  1. Register at https://www.cityscapes-dataset.com/ and download from {CITYSCAPES_URL}\n'
      '     leftImg8bit_trainvaltest.zip (11 GB, the photos) and gtFine_trainvaltest.zip '
      '(241 MB, the label maps).\n'
      f'  2. Put both zips (or the leftImg8bit/ and gtFine/ folders they extract to) in one '
      f'directory{" such as " + where if where else ""}.\n'
      '  3. Pass it as --config.data.manual_dir=DIR. The first run pairs photo (A) and colour '
      'label map (B) at 256x256 into the tfds data_dir (2975 train, 500 val pairs); later '
      'runs need no manual_dir.\n'
      'An already combined A|B cityscapes folder or cityscapes.tar.gz is accepted too.')


# ----------------------------------------------------------------------------------------
# Reading the raw data: folders, archives, the official Cityscapes zips.


def _is_image(path: str) -> bool:
  base = path.rsplit('/', 1)[-1]
  return not base.startswith('.') and base.lower().endswith(IMAGE_EXTENSIONS)


def _split_of(relpath: str) -> tuple[str, str] | None:
  """'facades/train/1.jpg' -> ('train', '1'); None if not an image directly in a split dir."""
  parts = [p for p in relpath.replace('\\', '/').split('/') if p not in ('', '.')]
  if len(parts) < 2 or parts[-2] not in SPLITS or not _is_image(parts[-1]):
    return None
  return parts[-2], os.path.splitext(parts[-1])[0]


def _top_dir(relpaths: Iterable[str]) -> str | None:
  for p in relpaths:
    parts = [q for q in p.split('/') if q not in ('', '.')]
    if len(parts) >= 3:
      return parts[-3]
  return None


class _Aligned:
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
            yield wanted[m.name], (lambda d=data: _split_aligned(d))
    elif self.kind == 'zip':
      with zipfile.ZipFile(self.path) as zf:
        for member, name in sorted(wanted.items(), key=lambda kv: kv[1]):
          data = zf.read(member)
          yield name, (lambda d=data: _split_aligned(d))
    else:
      for member, name in sorted(wanted.items(), key=lambda kv: kv[1]):
        path = self.path / member
        yield name, (lambda p=path: _split_aligned(p.read_bytes()))


def _open_rgb(data: bytes) -> Image.Image:
  im = Image.open(io.BytesIO(data))
  im.load()  # Raises for truncated / corrupt data.
  return im if im.mode == 'RGB' else im.convert('RGB')


def _split_aligned(data: bytes) -> tuple[Image.Image, Image.Image]:
  im = _open_rgb(data)
  w, h = im.size
  half = w // 2
  if half < 1:
    raise ValueError(f'{w}x{h} is too narrow to be an A|B pair')
  return im.crop((0, 0, half, h)), im.crop((half, 0, 2 * half, h))


class _CityscapesRaw:
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
                      + cityscapes_instructions()) from e

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
        yield name, (lambda a=read_p(p), b=read_l(l): _combine_cityscapes(a, b))


@contextlib.contextmanager
def _reader(path: Path):
  """Yields member -> bytes for an extracted folder or a zip ('leftImg8bit/train/...')."""
  if path.is_dir():
    yield lambda member: (path.parent / member).read_bytes()
  else:
    with zipfile.ZipFile(path) as zf:
      yield zf.read


def _combine_cityscapes(photo: bytes, label: bytes) -> tuple[Image.Image, Image.Image]:
  size = (CITYSCAPES_SIZE, CITYSCAPES_SIZE)
  a = _open_rgb(photo).resize(size, Image.Resampling.BICUBIC)
  b = _open_rgb(label).resize(size, Image.Resampling.NEAREST)  # Keep class colours exact.
  return a, b


def _archive_kind(path: Path) -> str | None:
  name = path.name.lower()
  if name.endswith('.zip'):
    return 'zip'
  if name.endswith(('.tar.gz', '.tgz', '.tar')):
    return 'tar'
  return None


def _listing(path: Path, limit: int = 8) -> str:
  names = sorted(p.name + ('/' if p.is_dir() else '') for p in path.iterdir()
                 if not p.name.startswith('.'))
  more = f', ... ({len(names)} entries)' if len(names) > limit else ''
  return ', '.join(names[:limit]) + more


def _find_cityscapes_raw(d: Path) -> _CityscapesRaw | DataError | None:
  def find(stem):
    for cand in (d / f'{stem}_trainvaltest.zip', d / stem, d / f'{stem}_trainvaltest' / stem):
      if cand.exists():
        return cand
    return None
  photos, labels = find('leftImg8bit'), find('gtFine')
  if photos and labels:
    return _CityscapesRaw(photos, labels)
  if photos or labels:
    have, lack = ((photos, 'gtFine_trainvaltest.zip (or gtFine/)') if photos
                  else (labels, 'leftImg8bit_trainvaltest.zip (or leftImg8bit/)'))
    return DataError(f'{d} holds {have.name} but not {lack}.\n' + cityscapes_instructions(str(d)))
  return None


def resolve_manual(path: str | os.PathLike, name: str):
  """What ``config.data.manual_dir`` points at, checked; raises DataError if unusable."""
  cfg = CONFIGS[name]
  p = Path(os.path.abspath(os.path.expanduser(str(path))))
  fetch = (cityscapes_instructions(str(p)) if not cfg.auto_download else
           f'Download {cfg.url} and pass the .tar.gz itself or the folder it extracts to '
           '(train/, val/, test/ of A|B images).')
  if not p.exists():
    raise DataError(f'data.manual_dir {p} does not exist.\n{fetch}')
  if p.is_file():
    kind = _archive_kind(p)
    if kind is None:
      raise DataError(f'data.manual_dir {p} is a file but not a .tar.gz, .tgz, .tar or .zip '
                      f'archive.\n{fetch}')
    layout = _Aligned(p, kind)
  else:
    entries = [e for e in p.iterdir() if not e.name.startswith('.')]
    if not entries:
      raise DataError(f'data.manual_dir {p} is empty.\n{fetch}')
    layout = None
    for root in (p, p / name):
      if any((root / s).is_dir() for s in SPLITS):
        layout = _Aligned(root, 'dir')
        if layout.splits():
          break
        raise DataError(
            f'data.manual_dir {p}: the split folders under {root} hold no images '
            f'({", ".join(IMAGE_EXTENSIONS)}).\n{fetch}')
    if layout is None:
      archives = [e for e in entries if e.is_file() and _archive_kind(e)]
      own = [e for e in archives if e.name.lower().startswith(name.lower() + '.')]
      if name == 'cityscapes':
        raw = _find_cityscapes_raw(p)
        if isinstance(raw, DataError):
          raise raw
        if raw is not None:
          layout = raw
      if layout is None and (own or len(archives) == 1):
        a = (own or archives)[0]
        layout = _Aligned(a, _archive_kind(a))
      if layout is None:
        raise DataError(
            f'data.manual_dir {p} holds neither {cfg.archive} nor its extracted train/, val/, '
            f'test/ folders of A|B images (found: {_listing(p)}).\n{fetch}')
  if not layout.splits():
    raise DataError(f'data.manual_dir {p}: {layout.path if hasattr(layout, "path") else p} '
                    'holds no images in train/, val/ or test/ folders.\n' + fetch)
  top = layout.top_dir() if layout.kind != 'dir' else (
      layout.path.name if layout.path != p / name else name)
  if top in CONFIGS and top != name:
    raise DataError(f'data.manual_dir {p} holds the {top!r} dataset, but data.dataset is '
                    f'{name!r}. Point manual_dir at the {name} data or set '
                    f'--config.data.dataset={top}.')
  return layout


# ----------------------------------------------------------------------------------------
# The builder.


def _ordered_parallel_map(fn, items: Iterable, workers: int, window: int) -> Iterator:
  """fn over items in threads (PIL releases the GIL), results in input order, bounded."""
  with concurrent.futures.ThreadPoolExecutor(workers) as ex:
    pending = collections.deque()
    for item in items:
      pending.append(ex.submit(fn, item))
      if len(pending) >= window:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


class P2pPaired(tfds.core.GeneratorBasedBuilder):
  """pix2pix paired datasets (aligned A|B releases of the pix2pix authors)."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'A and B split from the aligned A|B releases.'}
  BUILDER_CONFIGS = list(BUILDER_CONFIGS)
  # tfds 4.9.10 finds a builder's code_path through `importlib_resources`, which it only
  # declares for Python < 3.9; giving the path here avoids that import.
  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    return epath.Path(__file__)

  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      'Put <name>.tar.gz from ' + BASE_URL + ' (or its extracted folder) in the manual '
      'directory. Cityscapes:\n' + cityscapes_instructions())

  def __init__(self, *, manual_path: str | os.PathLike | None = None, strict: bool = False,
               **kwargs):
    """As tfds.core.DatasetBuilder, plus:

    Args:
      manual_path: archive or folder to build from (see :func:`resolve_manual`), or a
        layout it returned; overrides DownloadConfig.manual_dir.
      strict: raise DataError at the first unreadable image instead of skipping it.
    """
    self._manual_path = manual_path
    self._strict = strict
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    c: P2pPairedConfig = self.builder_config
    image = lambda: tfds.features.Image(shape=(None, None, 3), encoding_format=c.encoding)
    return tfds.core.DatasetInfo(
        builder=self,
        description=(f'{c.description}\nA = {c.side_a}; B = {c.side_b}. Paper direction: '
                     f'{c.paper_direction}. Source: {c.url}'),
        features=tfds.features.FeaturesDict({'A': image(), 'B': image(),
                                             'name': tfds.features.Text()}),
        homepage=c.homepage,
        metadata=tfds.core.MetadataDict(),
        citation=_CITATION,
    )

  def _layout(self, dl_manager):
    c: P2pPairedConfig = self.builder_config
    manual = self._manual_path
    if manual is None:  # Plain tfds use: DownloadConfig(manual_dir=...) or its default.
      default = dl_manager._manual_dir  # pylint: disable=protected-access
      if default and Path(default).is_dir() and any(Path(default).iterdir()):
        manual = default
    if isinstance(manual, (_Aligned, _CityscapesRaw)):
      return manual
    if manual:
      return resolve_manual(manual, c.name)
    if not c.auto_download:
      raise DataError(cityscapes_instructions())
    try:
      path = Path(dl_manager.download(c.url))
    except Exception as e:  # pylint: disable=broad-except
      raise DataError(
          f'Could not download {c.url} ({type(e).__name__}: {e}).\nIf this machine is '
          f'offline, download {c.archive} elsewhere and pass '
          f'--config.data.manual_dir=PATH/{c.archive} (or the folder it extracts to).') from e
    return _Aligned(path, 'tar')

  def _split_generators(self, dl_manager):
    layout = self._layout(dl_manager)
    logging.info('Building p2p_paired/%s from %r (splits: %s).', self.builder_config.name,
                 layout, ', '.join(layout.splits()))
    return {s: self._generate_examples(layout, s) for s in layout.splits()}

  def _generate_examples(self, layout, split):
    c: P2pPairedConfig = self.builder_config
    fmt = 'PNG' if c.encoding == 'png' else 'JPEG'

    def encode(im: Image.Image) -> bytes:
      buf = io.BytesIO()
      if fmt == 'PNG':
        im.save(buf, format='PNG', compress_level=1)  # 3x faster than 6, ~6% larger.
      else:
        im.save(buf, format='JPEG', quality=95, subsampling=0)
      return buf.getvalue()

    def work(item):
      name, load = item
      try:
        a, b = load()
        return name, (encode(a), encode(b), a.size), None
      except Exception as e:  # pylint: disable=broad-except
        return name, None, e

    skipped = []
    min_hw = [None, None]
    workers = max(2, min(8, os.cpu_count() or 2))
    for name, out, err in _ordered_parallel_map(work, layout.items(split), workers,
                                                window=4 * workers):
      if err is not None:
        where = f'{layout!r}: {split}/{name}'
        if self._strict:
          raise DataError(f'Unreadable image {where} ({err}). Remove or replace it, or set '
                          '--config.data.strict=False to skip unreadable images.')
        logging.warning('Skipping unreadable image %s (%s).', where, err)
        skipped.append(name)
        continue
      a, b, (w, h) = out
      min_hw = [h if min_hw[0] is None else min(min_hw[0], h),
                w if min_hw[1] is None else min(min_hw[1], w)]
      yield name, {'A': a, 'B': b, 'name': name}
    if skipped:
      logging.warning('p2p_paired/%s %s: skipped %d unreadable image(s): %s', c.name, split,
                      len(skipped), ', '.join(skipped[:20]))
    if min_hw[0] is not None:
      self.info.metadata.setdefault('min_size', {})[split] = min_hw
    self.info.metadata.setdefault('skipped', {})[split] = skipped


_CITATION = """\
@inproceedings{isola2017image,
  title={Image-to-Image Translation with Conditional Adversarial Networks},
  author={Isola, Phillip and Zhu, Jun-Yan and Zhou, Tinghui and Efros, Alexei A},
  booktitle={CVPR},
  year={2017}
}"""


# ----------------------------------------------------------------------------------------
# The PairedSource.


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
    if name not in CONFIGS:
      raise DataError(f'Unknown standard dataset {name!r}; known: {", ".join(NAMES)}.')
    self.name = name
    self.builder_config = CONFIGS[name]
    self._data_dir = os.path.expanduser(data_dir) if data_dir else None
    self._manual_dir = manual_dir
    self._strict = strict
    self._train_split = train_split
    self._max = max_dataset_size
    self._mode = preprocess_mode
    self._crop = crop_size
    self._builder: P2pPaired | None = None

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'StandardSource':
    d = config.data
    return cls(d.dataset, data_dir=d.data_dir, manual_dir=d.manual_dir, strict=d.strict,
               train_split=d.train_split, max_dataset_size=d.max_dataset_size,
               preprocess_mode=d.preprocess, crop_size=config.image_size)

  def builder(self) -> P2pPaired:
    """The prepared tfds builder (prepares on first call)."""
    if self._builder is not None:
      return self._builder
    b = P2pPaired(config=self.name, data_dir=self._data_dir)
    # (tfds warns about a missing dataset_info.json when asked about an absent folder.)
    if not ((b.data_path / 'dataset_info.json').exists() and b.is_prepared()):
      layout = None
      if self._manual_dir:
        layout = resolve_manual(self._manual_dir, self.name)  # Fails fast, before tfds.
      elif not self.builder_config.auto_download:
        raise DataError(f'{self.name} is not prepared in {b.data_dir} and no '
                        'data.manual_dir was given.\n' + cityscapes_instructions())
      b = P2pPaired(config=self.name, data_dir=self._data_dir, manual_path=layout,
                    strict=self._strict)
      logging.info('Preparing p2p_paired/%s into %s (once).', self.name, b.data_dir)
      b.download_and_prepare(download_config=tfds.download.DownloadConfig(
          try_download_gcs=False))
      b = P2pPaired(config=self.name, data_dir=self._data_dir)  # Reload the written info.
      counts = ', '.join(f'{k} {v.num_examples}' for k, v in sorted(
          b.info.splits.items(), key=lambda kv: SPLITS.index(kv[0]) if kv[0] in SPLITS else 9))
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
      if n < process_count:
        raise DataError(f'Split {split!r} of {self.name} has {n} pairs, fewer than the '
                        f'{process_count} processes reading it.')
      spec = tfds.even_splits(spec, n=process_count, drop_remainder=True)[process_index]
    ds = self.builder().as_dataset(
        split=spec, shuffle_files=shuffle_files,
        read_config=tfds.ReadConfig(shuffle_seed=seed, try_autocache=False))  # The pipeline caches.
    return ds.map(lambda ex: {'A': ex['A'], 'B': ex['B'], 'name': ex['name']},
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


@sources.register(*NAMES)
def _make_source(config: ml_collections.ConfigDict) -> StandardSource:
  return StandardSource.from_config(config)
