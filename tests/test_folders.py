"""Custom paired folders: layouts, channels, bit depths, formats, order, sharding, errors."""

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import tiny_config
from p2p_jax.data import folders, image_files, pipeline, sources
from p2p_jax.errors import DataError

H, W = 20, 30  # Non-square, small.


def _img(seed, h=H, w=W, channels=3, dtype=np.uint8):
  rng = np.random.default_rng(seed)
  hi = 65535 if dtype == np.uint16 else 255
  x = rng.integers(0, hi + 1, (h, w, channels) if channels == 3 else (h, w)).astype(dtype)
  return x


def _save(path: Path, x: np.ndarray, **kw):
  path.parent.mkdir(parents=True, exist_ok=True)
  if x.dtype == np.uint16 and x.ndim == 3:  # Pillow cannot write 16-bit RGB; TF can (PNG).
    tf.io.write_file(str(path), tf.io.encode_png(x))
  else:
    Image.fromarray(x).save(path, **kw)
  return x


def _pairs_dir(root: Path, split='train', n=3, a_ch=1, b_ch=3, a_ext='.png', b_ext='.png',
               layout='b', h=H, w=W):
  """Writes n pairs; returns {name: (A array, B array)}."""
  out = {}
  for i in range(n):
    a, b = _img(10 * i, h, w, a_ch), _img(10 * i + 1, h, w, b_ch)
    if layout == 'b':
      pa, pb = root / split / 'A' / f'{i}{a_ext}', root / split / 'B' / f'{i}{b_ext}'
    else:
      pa, pb = root / 'A' / split / f'{i}{a_ext}', root / 'B' / split / f'{i}{b_ext}'
    _save(pa, a)
    _save(pb, b)
    out[str(i)] = (a, b)
  return out


def _read_all(src, split='train', **kw):
  return {ex['name'].decode(): ex for ex in src.as_dataset(split, **kw).as_numpy_iterator()}


def _as3(x):
  return x if x.ndim == 3 else x[..., None]


# --------------------------------------------------------------------------- layouts


def test_paired_folders_gray_a_rgb_b(tmp_path):
  data = _pairs_dir(tmp_path, 'train', 3)
  _pairs_dir(tmp_path, 'test', 2)
  src = folders.FolderSource(str(tmp_path), crop_size=16)
  assert (src.channels_a, src.channels_b) == (1, 3)
  assert src.dtype_a == tf.uint8 and src.dtype_b == tf.uint8
  assert src.splits() == ['train', 'test']
  assert src.num_examples('train') == 3 and src.num_examples('test') == 2
  got = _read_all(src)
  assert sorted(got) == ['0', '1', '2']
  for name, (a, b) in data.items():
    np.testing.assert_array_equal(got[name]['A'], _as3(a))
    np.testing.assert_array_equal(got[name]['B'], b)


def test_aligned_layout_splits_left_right(tmp_path):
  ab = _save(tmp_path / 'train' / 'x.png', _img(1, H, 2 * W + 1))  # Odd: last column dropped.
  _save(tmp_path / 'train' / 'sub' / 'y.jpg', _img(2, H, 2 * W), quality=95)
  src = folders.FolderSource(str(tmp_path))
  assert (src.channels_a, src.channels_b) == (3, 3)
  got = _read_all(src)
  assert sorted(got) == ['sub/y', 'x']  # Subfolders are read; names are relative stems.
  np.testing.assert_array_equal(got['x']['A'], ab[:, :W])
  np.testing.assert_array_equal(got['x']['B'], ab[:, W:2 * W])
  assert got['sub/y']['A'].shape == (H, W, 3)


def test_reference_layout_and_mixed_extensions(tmp_path):
  data = _pairs_dir(tmp_path, 'train', 2, a_ch=3, b_ch=1, a_ext='.bmp', b_ext='.tif',
                    layout='c')
  src = folders.FolderSource(str(tmp_path))
  assert (src.channels_a, src.channels_b) == (3, 1)
  got = _read_all(src)
  for name, (a, b) in data.items():
    np.testing.assert_array_equal(got[name]['A'], a)
    np.testing.assert_array_equal(got[name]['B'], _as3(b))


def test_mixed_codecs_and_channels_on_one_side(tmp_path):
  # Side A: a grayscale PNG, an RGB JPEG and a grayscale TIFF -> 3 channels, gray repeated.
  gray_png = _save(tmp_path / 'train/A/0.png', _img(0, channels=1))
  _save(tmp_path / 'train/A/1.jpg', _img(1), quality=100)
  gray_tif = _save(tmp_path / 'train/A/2.tiff', _img(2, channels=1))
  for i in range(3):
    _save(tmp_path / f'train/B/{i}.png', _img(5 + i, channels=1))
  src = folders.FolderSource(str(tmp_path))
  assert (src.channels_a, src.channels_b) == (3, 1)
  got = _read_all(src)
  np.testing.assert_array_equal(got['0']['A'], np.repeat(gray_png[..., None], 3, -1))
  np.testing.assert_array_equal(got['2']['A'], np.repeat(gray_tif[..., None], 3, -1))
  assert got['1']['A'].shape == (H, W, 3)


@pytest.mark.parametrize('ext', ['.png', '.tif'])
def test_16_bit_grayscale_keeps_precision(tmp_path, ext):
  a16 = _save(tmp_path / f'train/A/0{ext}', _img(0, channels=1, dtype=np.uint16))
  b8 = _save(tmp_path / 'train/B/0.png', _img(1))
  src = folders.FolderSource(str(tmp_path))
  assert src.dtype_a == tf.uint16 and src.dtype_b == tf.uint8
  ex = _read_all(src)['0']
  assert ex['A'].dtype == np.uint16
  np.testing.assert_array_equal(ex['A'][..., 0], a16)
  np.testing.assert_array_equal(ex['B'], b8)
  # The pipeline's conversion maps both depths to [0, 1].
  f = tf.image.convert_image_dtype(ex['A'], tf.float32).numpy()
  np.testing.assert_allclose(f[..., 0], a16 / 65535.0, atol=1e-6)


def test_16_bit_rgb_png_and_8_bit_upscaled_on_same_side(tmp_path):
  rgb16 = _save(tmp_path / 'train/A/0.png', _img(0, dtype=np.uint16))
  rgb8 = _save(tmp_path / 'train/A/1.png', _img(1))
  for i in range(2):
    _save(tmp_path / f'train/B/{i}.png', _img(9 + i))
  src = folders.FolderSource(str(tmp_path))
  assert src.dtype_a == tf.uint16
  got = _read_all(src)
  np.testing.assert_array_equal(got['0']['A'], rgb16)
  np.testing.assert_array_equal(got['1']['A'], rgb8.astype(np.uint16) * 257)


# --------------------------------------------------------------------------- bad input


def test_corrupt_file_is_skipped_and_named(tmp_path, caplog):
  _pairs_dir(tmp_path, 'train', 4)
  bad = tmp_path / 'train/B/2.png'
  bad.write_bytes(bad.read_bytes()[:60])  # Truncated: the header still opens.
  junk = tmp_path / 'train/A/3.png'
  junk.write_bytes(b'not an image at all')
  src = folders.FolderSource(str(tmp_path))
  with caplog.at_level(logging.WARNING):
    n = src.num_examples('train')
  assert n == 2
  text = caplog.text
  assert str(bad) in text and str(junk) in text
  assert 'skipped 2 unreadable image(s); using 2 of 4 pairs' in text
  assert sorted(_read_all(src)) == ['0', '1']


def test_strict_mode_stops_naming_the_file(tmp_path):
  _pairs_dir(tmp_path, 'train', 2)
  bad = tmp_path / 'train/A/1.png'
  bad.write_bytes(bad.read_bytes()[:60])
  src = folders.FolderSource(str(tmp_path), strict=True)
  assert src.channels_a == 1  # Reading channels stays possible.
  with pytest.raises(DataError, match=f'Unreadable image {bad}.*strict=False'):
    src.num_examples('train')


@pytest.mark.parametrize('case,match', [
    ('missing_partner', r'train/A/1.png has no partner in .*train/B .*1\.\*'),
    ('size_mismatch', r'A and B differ in size: .*A/0.png is 30x20 but .*B/0.png is 31x20'),
    ('empty_split', r'Split folder .*train holds no images'),
    ('no_split', r"No 'train' split in .* \(found: none\)"),
    ('other_split_only',
     r"No 'train' split in .* \(found: val\)\. Set --config.data.train_split"),
    ('duplicate_names', r'A/0\.(jpg|png) and .*A/0\.(jpg|png) have the same name'),
    ('one_side_folder', r'train has A/ but no B/; paired folders need both'),
])
def test_user_errors_are_data_errors(tmp_path, case, match):
  if case == 'missing_partner':
    _pairs_dir(tmp_path, 'train', 2)
    (tmp_path / 'train/B/1.png').unlink()
  elif case == 'size_mismatch':
    _save(tmp_path / 'train/A/0.png', _img(0, channels=1))
    _save(tmp_path / 'train/B/0.png', _img(1, H, W + 1))
  elif case == 'empty_split':
    (tmp_path / 'train').mkdir()
    (tmp_path / 'train/readme.txt').write_text('x')
  elif case == 'no_split':
    (tmp_path / 'notes.txt').write_text('x')
  elif case == 'other_split_only':
    _pairs_dir(tmp_path, 'val', 1)
  elif case == 'duplicate_names':
    _pairs_dir(tmp_path, 'train', 1)
    _save(tmp_path / 'train/A/0.jpg', _img(0))
  elif case == 'one_side_folder':
    _save(tmp_path / 'train/A/0.png', _img(0))
  src = folders.FolderSource(str(tmp_path))
  with pytest.raises(DataError, match=match):
    src.num_examples('train')


def test_missing_eval_split_names_the_alternatives(tmp_path):
  _pairs_dir(tmp_path, 'train', 1)
  _pairs_dir(tmp_path, 'val', 1)
  src = folders.FolderSource(str(tmp_path))
  with pytest.raises(DataError, match=r"No 'test' split .*found: train, val"):
    src.as_dataset('test')


def test_no_or_bad_data_path():
  with pytest.raises(DataError, match='--config.data.data_path=DIR'):
    folders.FolderSource('')
  with pytest.raises(DataError, match='/no/such/dir is not a directory'):
    folders.FolderSource('/no/such/dir')


def test_image_smaller_than_crop(tmp_path):
  _pairs_dir(tmp_path, 'train', 2)
  src = folders.FolderSource(str(tmp_path), preprocess_mode='crop', crop_size=32)
  with pytest.raises(DataError, match=r"train/A/0.png' is 30x20.*smaller than the 32x32 crop"):
    src.as_dataset('train')
  # resize_and_crop resizes first, so small images are fine.
  folders.FolderSource(str(tmp_path), preprocess_mode='resize_and_crop', crop_size=32
                       ).as_dataset('train')


# --------------------------------------------------------------------------- order, shards


def test_order_is_deterministic_and_shards_are_disjoint(tmp_path):
  _pairs_dir(tmp_path, 'train', 9, a_ch=1, b_ch=1)
  src = folders.FolderSource(str(tmp_path))
  names = lambda **kw: [ex['name'] for ex in src.as_dataset('train', **kw).as_numpy_iterator()]
  assert names() == [str(i).encode() for i in range(9)]  # Sorted without shuffling.
  s1, s2 = names(shuffle_files=True, seed=3), names(shuffle_files=True, seed=3)
  assert s1 == s2 and sorted(s1) == names() and s1 != names(shuffle_files=True, seed=4)
  shards = [names(process_index=i, process_count=2) for i in range(2)]
  assert len(shards[0]) == len(shards[1]) == 4  # Equal shards: one pair left out.
  assert not set(shards[0]) & set(shards[1])


def test_max_dataset_size_limits_train_only(tmp_path):
  _pairs_dir(tmp_path, 'train', 5)
  _pairs_dir(tmp_path, 'test', 3)
  src = folders.FolderSource(str(tmp_path), max_dataset_size=2)
  assert src.num_examples('train') == 2 and src.num_examples('test') == 3


# --------------------------------------------------------------------------- via config


def test_registered_source_and_channels_follow_direction(tmp_path):
  _pairs_dir(tmp_path, 'train', 1)
  cfg = tiny_config(**{'data.dataset': 'custom', 'data.data_path': str(tmp_path)})
  src = sources.get_source(cfg)
  assert isinstance(src, folders.FolderSource)
  cfg.data.direction = 'AtoB'
  assert sources.io_channels(cfg, src) == sources.Channels(1, 3)
  cfg.data.direction = 'BtoA'
  assert sources.io_channels(cfg, src) == sources.Channels(3, 1)


def test_unknown_dataset_name():
  cfg = tiny_config(**{'data.dataset': 'facadez'})
  with pytest.raises(DataError, match="Unknown dataset 'facadez'.*custom.*facades"):
    sources.get_source(cfg)


def test_custom_config_file_loads():
  import importlib.util
  path = os.path.join(os.path.dirname(__file__), '..', 'configs', 'custom.py')
  spec = importlib.util.spec_from_file_location('custom_cfg', path)
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  c = mod.get_config()
  assert c.data.dataset == 'custom' and c.image_size == 256 and c.model.num_downs == 8


@pytest.mark.parametrize('direction,channels', [('AtoB', (1, 3)), ('BtoA', (3, 1))])
def test_pipeline_batches_non_square_gray_and_rgb(tmp_path, direction, channels):
  pipeline = pytest.importorskip('p2p_jax.data.pipeline')
  _pairs_dir(tmp_path, 'train', 3, h=40, w=60)
  (tmp_path / 'train/A/2.png').write_bytes(b'garbage')  # Skipped: 2 pairs remain.
  cfg = tiny_config(**{'data.dataset': 'custom', 'data.data_path': str(tmp_path),
                       'data.direction': direction})
  src = sources.get_source(cfg)
  batch = next(iter(pipeline.train_dataset(cfg, src, 2).as_numpy_iterator()))
  assert batch['input'].shape == (2, 32, 32, channels[0])
  assert batch['target'].shape == (2, 32, 32, channels[1])
  assert -1.0 <= batch['input'].min() and batch['target'].max() <= 1.0


# --------------------------------------------------------------------------- one listing


def test_image_files_list_and_name_rules(tmp_path):
  for rel in ('b.PNG', 'a.jpg', 'sub/c.webp', 'sub/.hidden.png', '.dot/d.png', 'skip/e.png',
              'notes.txt', 'sub/deeper/f.tif'):
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_bytes(b'')
  found = [p.relative_to(tmp_path).as_posix()
           for p in image_files.list_images(tmp_path, skip=('skip',))]
  assert found == ['a.jpg', 'b.PNG', 'sub/c.webp', 'sub/deeper/f.tif']
  assert image_files.is_image_name('x/y.JPEG') and not image_files.is_image_name('x/.y.png')
  assert not image_files.is_image_name('y.gif')


def test_folder_source_and_sampling_share_the_listing(tmp_path):
  """The custom dataset lists a split with the same rule as sampling a folder does."""
  _pairs_dir(tmp_path, 'train', 2, layout='b')
  (tmp_path / 'train' / 'A' / 'sub').mkdir()
  _save(tmp_path / 'train' / 'A' / 'sub' / '9.bmp', _img(3))
  _save(tmp_path / 'train' / 'B' / 'sub' / '9.png', _img(4))
  (tmp_path / 'train' / 'A' / '.x.png').write_bytes(b'')  # Hidden: ignored by both.
  src = folders.FolderSource(str(tmp_path))
  listed = sorted(str(p.a.path) for p in src.pairs('train'))
  assert listed == sorted(str(p) for p in image_files.list_images(tmp_path / 'train' / 'A'))
  names = [n for b in pipeline.image_folder_batches(str(tmp_path / 'train' / 'A'), 1, 32, 2)
           for n in b['name']]
  assert sorted(names) == sorted(p.name for p in src.pairs('train')) == ['0', '1', 'sub/9']


def test_process_shard_is_the_one_rule_of_every_source():
  assert [sources.process_shard(7, i, 3) for i in range(3)] == [(0, 2), (2, 4), (4, 6)]
  assert sources.process_shard(5, 0, 1) == (0, 5)
  with pytest.raises(DataError, match='fewer than the 3 processes'):
    sources.process_shard(2, 0, 3)
  with pytest.raises(ValueError, match='process_index 3 not in'):
    sources.process_shard(7, 3, 3)
