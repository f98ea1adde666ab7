"""Standard datasets (tfds builder p2p_paired): manual archives and folders, errors, splits.

Everything is built from tiny fake releases in tmp_path; nothing is downloaded.
"""

import io
import logging
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from conftest import tiny_config
from p2p_jax.data import paired_builder, sources, standard
from p2p_jax.errors import DataError

S = 32  # Side of A and B in the fake releases.
SHARED = Path(__file__).resolve().parents[1].parent / 'shared' / 'data'
COUNTS = {'train': 4, 'val': 2, 'test': 3}


def _aligned_jpeg(seed: int) -> bytes:
  rng = np.random.default_rng(seed)
  # Smooth content so JPEG is near-lossless; A and B differ clearly (left dark, right light).
  x = np.zeros((S, 2 * S, 3), np.uint8)
  x[:, :S] = rng.integers(0, 100, 3)
  x[:, S:] = rng.integers(150, 256, 3)
  buf = io.BytesIO()
  Image.fromarray(x).save(buf, format='JPEG', quality=95)
  return buf.getvalue()


def _release(name='facades', counts=COUNTS):
  """{member path: bytes} of a fake '<name>.tar.gz'."""
  files = {}
  for split, n in counts.items():
    for i in range(1, n + 1):
      files[f'{name}/{split}/{i}.jpg'] = _aligned_jpeg(hash((split, i)) % 1000)
  return files


def _write_tar(path: Path, files: dict):
  with tarfile.open(path, 'w:gz') as t:
    for member, data in files.items():
      info = tarfile.TarInfo(member)
      info.size = len(data)
      t.addfile(info, io.BytesIO(data))
  return path


def _write_dir(root: Path, files: dict):
  for member, data in files.items():
    p = root / member
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
  return root


def _source(tmp_path, manual, name='facades', **kw):
  return standard.StandardSource(name, data_dir=str(tmp_path / 'tfds'), manual_dir=str(manual),
                                 **kw)


def _left_right(data: bytes):
  x = np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))
  return x[:, :S], x[:, S:2 * S]


# --------------------------------------------------------------------------- cheap metadata


def test_channels_need_no_data_and_touch_nothing(tmp_path):
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      'facades_cfg', Path(__file__).resolve().parents[1] / 'configs' / 'facades.py')
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  cfg = mod.get_config()
  cfg.data.data_dir = str(tmp_path / 'tfds')
  cfg.data.manual_dir = str(tmp_path / 'nowhere')
  assert sources.io_channels(cfg) == sources.Channels(3, 3)
  assert not (tmp_path / 'tfds').exists()
  for name in paired_builder.NAMES:
    c = paired_builder.CONFIGS[name]
    assert c.url == f'{paired_builder.BASE_URL}{name}.tar.gz' and c.splits and c.side_a and c.side_b


@pytest.mark.parametrize('name', ['cityscapes', 'maps', 'edges2shoes', 'edges2handbags',
                                  'night2day', 'facades'])
def test_dataset_configs_load(name):
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      f'{name}_cfg', Path(__file__).resolve().parents[1] / 'configs' / f'{name}.py')
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config()
  assert c.data.dataset == name and c.image_size == 256 and c.model.num_downs == 8
  assert c.data.direction == paired_builder.CONFIGS[name].paper_direction
  assert c.data.eval_split in dict(paired_builder.CONFIGS[name].splits)
  epochs = {'edges2shoes': 15, 'edges2handbags': 15, 'night2day': 17}.get(name, 200)
  assert c.num_train_steps == f'{epochs}ep'
  assert c.batch_size == (4 if name in ('edges2shoes', 'edges2handbags', 'night2day') else 1)


# --------------------------------------------------------------------------- building


def test_build_from_tar_gz(tmp_path):
  files = _release()
  archive = _write_tar(tmp_path / 'facades.tar.gz', files)
  src = _source(tmp_path, archive)
  assert {s: src.num_examples(s) for s in COUNTS} == COUNTS
  got = {ex['name'].decode(): ex for ex in src.as_dataset('train').as_numpy_iterator()}
  assert sorted(got) == ['1', '2', '3', '4']
  for name, ex in got.items():
    a, b = _left_right(files[f'facades/train/{name}.jpg'])
    np.testing.assert_array_equal(ex['A'], a)  # A = left half, stored losslessly (PNG).
    np.testing.assert_array_equal(ex['B'], b)
  # Prepared once: a new source finds it without manual_dir.
  again = standard.StandardSource('facades', data_dir=str(tmp_path / 'tfds'))
  assert again.num_examples('test') == 3


@pytest.mark.parametrize('layout', ['extracted', 'parent_of_extracted', 'dir_with_archive',
                                    'zip'])
def test_manual_layouts(tmp_path, layout):
  files = _release(counts={'train': 2, 'test': 1})
  if layout == 'extracted':
    manual = _write_dir(tmp_path / 'm', files) / 'facades'
  elif layout == 'parent_of_extracted':
    manual = _write_dir(tmp_path / 'm', files)
  elif layout == 'dir_with_archive':
    (tmp_path / 'm').mkdir()
    _write_tar(tmp_path / 'm' / 'facades.tar.gz', files)
    manual = tmp_path / 'm'
  else:
    manual = tmp_path / 'facades.zip'
    with zipfile.ZipFile(manual, 'w') as z:
      for member, data in files.items():
        z.writestr(member, data)
  src = _source(tmp_path, manual)
  assert src.num_examples('train') == 2 and src.num_examples('test') == 1
  ex = next(src.as_dataset('test').as_numpy_iterator())
  np.testing.assert_array_equal(ex['A'], _left_right(files['facades/test/1.jpg'])[0])


def test_corrupt_image_in_archive_is_skipped_and_named(tmp_path, caplog):
  files = _release(counts={'train': 3})
  files['facades/train/2.jpg'] = files['facades/train/2.jpg'][:200]  # Truncated.
  archive = _write_tar(tmp_path / 'facades.tar.gz', files)
  with caplog.at_level(logging.WARNING):
    assert _source(tmp_path, archive).num_examples('train') == 2
  assert 'train/2' in caplog.text and 'skipped 1 unreadable image(s)' in caplog.text


def test_corrupt_image_strict(tmp_path):
  files = _release(counts={'train': 2})
  files['facades/train/2.jpg'] = b'garbage'
  archive = _write_tar(tmp_path / 'facades.tar.gz', files)
  with pytest.raises(DataError, match=r'Unreadable image .*train/2.*strict=False'):
    _source(tmp_path, archive, strict=True).num_examples('train')


def test_splits_shards_order_and_max_size(tmp_path):
  archive = _write_tar(tmp_path / 'facades.tar.gz', _release(counts={'train': 6, 'test': 1}))
  src = _source(tmp_path, archive)
  names = lambda **kw: [e['name'] for e in src.as_dataset('train', **kw).as_numpy_iterator()]
  assert names() == names() and sorted(names()) == [str(i).encode() for i in range(1, 7)]
  assert names(shuffle_files=True, seed=1) == names(shuffle_files=True, seed=1)
  shards = [names(process_index=i, process_count=2) for i in range(2)]
  assert len(shards[0]) == len(shards[1]) == 3 and not set(shards[0]) & set(shards[1])
  with pytest.raises(DataError, match=r"no 'val' split; it has test, train"):
    src.as_dataset('val')
  small = _source(tmp_path, archive, max_dataset_size=4)
  assert small.num_examples('train') == 4 and small.num_examples('test') == 1
  assert len(list(small.as_dataset('train', process_index=1, process_count=2))) == 2


def test_crop_larger_than_images(tmp_path):
  archive = _write_tar(tmp_path / 'facades.tar.gz', _release(counts={'train': 1}))
  src = _source(tmp_path, archive, preprocess_mode='crop', crop_size=64)
  with pytest.raises(DataError, match=r'facades is 32x32.*smaller than the 64x64 crop'):
    src.as_dataset('train')


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize('case,match', [
    ('missing', r'manual_dir .*/m does not exist\.\nDownload http.*/facades\.tar\.gz'),
    ('empty', r'manual_dir .*/m is empty\.'),
    ('wrong_content', r'holds neither facades\.tar\.gz nor .* \(found: notes\.txt, x/\)'),
    ('not_archive', r'is a file but not a \.tar\.gz'),
    ('broken_archive', r'Cannot read the archive .*facades\.tar\.gz'),
    ('archive_without_splits', r'holds no images in train/, val/ or test/'),
    ('split_dirs_without_images', r'the split folders under .* hold no images'),
    ('other_dataset', r"holds the 'maps' dataset, but data.dataset is 'facades'"),
])
def test_manual_dir_errors(tmp_path, case, match):
  m = tmp_path / 'm'
  if case == 'empty':
    m.mkdir()
  elif case == 'wrong_content':
    (m / 'x').mkdir(parents=True)
    (m / 'notes.txt').write_text('hi')
  elif case == 'not_archive':
    m = tmp_path / 'facades.txt'
    m.write_text('hi')
  elif case == 'broken_archive':
    m = tmp_path / 'facades.tar.gz'
    m.write_bytes(b'\x1f\x8b not really gzip')
  elif case == 'archive_without_splits':
    m = _write_tar(tmp_path / 'facades.tar.gz', {'facades/readme.txt': b'hi'})
  elif case == 'split_dirs_without_images':
    (m / 'train').mkdir(parents=True)
    (m / 'train' / 'readme.txt').write_text('hi')
  elif case == 'other_dataset':
    m = _write_dir(tmp_path, _release('maps', {'train': 1})) / 'maps'
  src = _source(tmp_path, m)
  with pytest.raises(DataError, match=match):
    src.num_examples('train')
  assert not (tmp_path / 'tfds' / 'p2p_paired' / 'facades' / '1.0.0').exists()


def test_download_failure_is_a_data_error(tmp_path, monkeypatch):
  def fail(self, url):
    raise ConnectionError('offline')
  monkeypatch.setattr(tfds.download.DownloadManager, 'download', fail)
  src = standard.StandardSource('maps', data_dir=str(tmp_path / 'tfds'))
  with pytest.raises(DataError, match=r'(?s)Could not download .*maps\.tar\.gz.*offline.*'
                                      r'--config\.data\.manual_dir=PATH/maps\.tar\.gz'):
    src.num_examples('train')


def test_cityscapes_without_manual_dir_says_what_to_fetch(tmp_path):
  src = standard.StandardSource('cityscapes', data_dir=str(tmp_path / 'tfds'))
  with pytest.raises(DataError) as e:
    src.num_examples('train')
  msg = str(e.value)
  for needle in ('cannot be downloaded automatically', 'cityscapes-dataset.com',
                 'leftImg8bit_trainvaltest.zip', 'gtFine_trainvaltest.zip',
                 '--config.data.manual_dir=DIR'):
    assert needle in msg


def _cityscapes_zips(root: Path, only=None):
  ids = {'train': ['aachen_000000_000019', 'bonn_000001_000019'], 'val': ['lindau_000000_000019']}
  palette = np.array([[128, 64, 128], [70, 70, 70], [107, 142, 35]], np.uint8)
  labels = {}
  for stem, kind in (('leftImg8bit', 'photo'), ('gtFine', 'label')):
    if only and stem != only:
      continue
    with zipfile.ZipFile(root / f'{stem}_trainvaltest.zip', 'w') as z:
      for split, names in ids.items():
        for n in names:
          city = n.split('_')[0]
          rng = np.random.default_rng(len(n))
          if kind == 'photo':
            x = rng.integers(0, 256, (64, 128, 3), dtype=np.uint8)
            member = f'leftImg8bit/{split}/{city}/{n}_leftImg8bit.png'
          else:
            x = palette[rng.integers(0, 3, (64, 128))]
            labels[n] = x
            member = f'gtFine/{split}/{city}/{n}_gtFine_color.png'
            z.writestr(f'gtFine/{split}/{city}/{n}_gtFine_labelIds.png', b'ignored')
          buf = io.BytesIO()
          Image.fromarray(x).save(buf, format='PNG')
          z.writestr(member, buf.getvalue())
  return palette


def test_cityscapes_from_official_zips(tmp_path):
  (tmp_path / 'cs').mkdir()
  palette = _cityscapes_zips(tmp_path / 'cs')
  src = _source(tmp_path, tmp_path / 'cs', name='cityscapes')
  assert src.num_examples('train') == 2 and src.num_examples('val') == 1
  ex = next(src.as_dataset('val').as_numpy_iterator())
  assert ex['name'] == b'lindau_000000_000019'
  assert ex['A'].shape == ex['B'].shape == (256, 256, 3)
  colours = {tuple(c) for c in ex['B'].reshape(-1, 3)}
  assert colours <= {tuple(c) for c in palette}  # Nearest-neighbour: exact class colours.


def test_cityscapes_with_one_zip_missing(tmp_path):
  (tmp_path / 'cs').mkdir()
  _cityscapes_zips(tmp_path / 'cs', only='gtFine')
  src = _source(tmp_path, tmp_path / 'cs', name='cityscapes')
  with pytest.raises(DataError, match=r'holds gtFine_trainvaltest.zip but not '
                                      r'leftImg8bit_trainvaltest.zip'):
    src.num_examples('train')


def test_registered_names():
  for name in paired_builder.NAMES:
    cfg = tiny_config(**{'data.dataset': name})
    assert isinstance(sources.get_source(cfg), standard.StandardSource)


# --------------------------------------------------------------------------- real data


@pytest.mark.skipif(not (SHARED / 'facades').is_dir() or not (SHARED / 'maps').is_dir(),
                    reason='real data in ../shared/data is absent')
def test_real_releases_are_recognised():
  facades = paired_builder.resolve_manual(SHARED / 'facades', 'facades')
  assert {s: len(v) for s, v in facades.index().items()} == {'train': 400, 'test': 85}
  maps = paired_builder.resolve_manual(SHARED / 'maps', 'maps')
  assert {s: len(v) for s, v in maps.index().items()} == {'train': 1096, 'val': 878}
  name, load = next(facades.items('test'))
  a, b = load()
  full = np.asarray(Image.open(SHARED / 'facades' / 'test' / f'{name}.jpg'))
  np.testing.assert_array_equal(np.asarray(a), full[:, :256])  # A = photo, the left half.
  with pytest.raises(DataError, match="holds the 'maps' dataset"):
    paired_builder.resolve_manual(SHARED / 'maps', 'facades')


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('P2P_SLOW_TESTS'), reason='set P2P_SLOW_TESTS=1')
@pytest.mark.skipif(not (SHARED / 'facades').is_dir(), reason='../shared/data is absent')
def test_real_facades_build(tmp_path):
  src = _source(tmp_path, SHARED / 'facades')
  assert src.num_examples('train') == 400 and src.num_examples('test') == 85
