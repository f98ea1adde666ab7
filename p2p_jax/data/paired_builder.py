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

Used through :class:`p2p_jax.data.standard.StandardSource` (registered for the six names),
or directly::

  builder = P2pPaired(config='facades', data_dir=..., manual_path='facades.tar.gz')
  builder.download_and_prepare()
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import io
import os
from pathlib import Path
from typing import Iterable, Iterator

from absl import logging
from etils import epath
from PIL import Image
import tensorflow_datasets as tfds

from p2p_jax.data import archives, cityscapes, image_files
from p2p_jax.errors import DataError

BASE_URL = 'http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/'


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


def resolve_manual(path: str | os.PathLike, name: str):
  """What ``config.data.manual_dir`` points at, checked; raises DataError if unusable."""
  cfg = CONFIGS[name]
  p = Path(os.path.abspath(os.path.expanduser(str(path))))
  fetch = (cityscapes.instructions(str(p)) if not cfg.auto_download else
           f'Download {cfg.url} and pass the .tar.gz itself or the folder it extracts to '
           '(train/, val/, test/ of A|B images).')
  if not p.exists():
    raise DataError(f'data.manual_dir {p} does not exist.\n{fetch}')
  if p.is_file():
    kind = archives.archive_kind(p)
    if kind is None:
      raise DataError(f'data.manual_dir {p} is a file but not a .tar.gz, .tgz, .tar or .zip '
                      f'archive.\n{fetch}')
    layout = archives.AlignedPairs(p, kind)
  else:
    entries = [e for e in p.iterdir() if not e.name.startswith('.')]
    if not entries:
      raise DataError(f'data.manual_dir {p} is empty.\n{fetch}')
    layout = None
    for root in (p, p / name):
      if any((root / s).is_dir() for s in archives.SPLITS):
        layout = archives.AlignedPairs(root, 'dir')
        if layout.splits():
          break
        raise DataError(
            f'data.manual_dir {p}: the split folders under {root} hold no images '
            f'({", ".join(image_files.IMAGE_EXTENSIONS)}).\n{fetch}')
    if layout is None:
      packed = [e for e in entries if e.is_file() and archives.archive_kind(e)]
      own = [e for e in packed if e.name.lower().startswith(name.lower() + '.')]
      if name == 'cityscapes':
        raw = cityscapes.find_raw(p)
        if isinstance(raw, DataError):
          raise raw
        if raw is not None:
          layout = raw
      if layout is None and (own or len(packed) == 1):
        a = (own or packed)[0]
        layout = archives.AlignedPairs(a, archives.archive_kind(a))
      if layout is None:
        raise DataError(
            f'data.manual_dir {p} holds neither {cfg.archive} nor its extracted train/, val/, '
            f'test/ folders of A|B images (found: {archives.listing(p)}).\n{fetch}')
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
      'directory. Cityscapes:\n' + cityscapes.instructions())

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
    if isinstance(manual, (archives.AlignedPairs, cityscapes.CityscapesRaw)):
      return manual
    if manual:
      return resolve_manual(manual, c.name)
    if not c.auto_download:
      raise DataError(cityscapes.instructions())
    try:
      path = Path(dl_manager.download(c.url))
    except Exception as e:  # pylint: disable=broad-except
      raise DataError(
          f'Could not download {c.url} ({type(e).__name__}: {e}).\nIf this machine is '
          f'offline, download {c.archive} elsewhere and pass '
          f'--config.data.manual_dir=PATH/{c.archive} (or the folder it extracts to).') from e
    return archives.AlignedPairs(path, 'tar')

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

