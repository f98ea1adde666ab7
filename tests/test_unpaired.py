"""Unpaired data for CycleGAN: sources, independent streams, epoch length, resume."""

import os
import zipfile

import numpy as np
import pytest
from conftest import tiny_cyclegan_config
from PIL import Image

from p2p_jax.data import unpaired
from p2p_jax.data.sources import DataError


def _save(path, array):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path)


def _folder(root, n_a=3, n_b=2, bad=True):
  rng = np.random.default_rng(0)
  for i in range(n_a):
    _save(f'{root}/trainA/a{i}.png', rng.integers(0, 255, (40 + 4 * i, 48, 3), np.uint8))
  for i in range(n_b):  # Grayscale, one 16-bit: B is a 1-channel, 16-bit side.
    arr = rng.integers(0, 65535, (44, 40), np.uint16) if i == 0 else \
        rng.integers(0, 255, (36, 52), np.uint8)
    _save(f'{root}/trainB/b{i}.png', arr)
  if bad:
    with open(f'{root}/trainB/broken.png', 'wb') as f:
      f.write(b'\x89PNG\r\n\x1a\nnot really')
  _save(f'{root}/testA/t.png', rng.integers(0, 255, (40, 40, 3), np.uint8))
  _save(f'{root}/testB/t.png', rng.integers(0, 255, (40, 40), np.uint8))
  return root


def _cfg(**kw):
  return tiny_cyclegan_config(**{'data.direction': 'AtoB', **kw})


def test_embedded_halves_are_disjoint():
  c = _cfg(**{'data.unpaired_halves': True})
  src = unpaired.get_source(c)
  assert (src.num_images('A', 'train'), src.num_images('B', 'train')) == (4, 4)
  names = {s: [ex['name'] for ex in src.side_dataset(s, 'train').as_numpy_iterator()]
           for s in 'AB'}
  assert len(names['A']) == 4 and len(names['B']) == 4
  assert not set(names['A']) & set(names['B'])  # No pair contributes to both sides.
  # Without halves every pair gives its A and its B.
  whole = unpaired.get_source(_cfg(**{'data.unpaired_halves': False}))
  assert whole.num_images('A', 'train') == whole.num_images('B', 'train') == 8
  # BtoA exchanges the sides.
  swapped = unpaired.get_source(_cfg(**{'data.unpaired_halves': True, 'data.direction': 'BtoA'}))
  ex = next(swapped.side_dataset('A', 'train').as_numpy_iterator())
  orig = next(src.side_dataset('B', 'train').as_numpy_iterator())
  np.testing.assert_array_equal(ex['image'], orig['image'])


def test_unpaired_folder_sides_bad_files_and_strict(tmp_path):
  root = _folder(str(tmp_path / 'd'))
  c = _cfg(**{'data.dataset': 'unpaired_folder', 'data.data_path': root})
  src = unpaired.get_source(c)
  assert (src.channels_a, src.channels_b) == (3, 1)
  assert (src.num_images('A', 'train'), src.num_images('B', 'train')) == (3, 2)  # broken skipped
  imgs = list(src.side_dataset('B', 'train').as_numpy_iterator())
  assert {x['image'].dtype for x in imgs} == {np.dtype(np.uint16)}
  assert sorted(x['image'].shape for x in imgs) == [(36, 52, 1), (44, 40, 1)]
  c.data.strict = True
  with pytest.raises(DataError, match='broken.png'):
    unpaired.get_source(c).num_images('B', 'train')
  with pytest.raises(DataError, match='No folder'):
    unpaired.get_source(_cfg(**{'data.dataset': 'unpaired_folder',
                                'data.data_path': str(tmp_path)})).num_images('A', 'train')


def test_train_batches_independent_jitter_and_resume(tmp_path):
  root = str(tmp_path / 'd')
  img = np.random.default_rng(1).integers(0, 255, (40, 40, 3), np.uint8)
  for side in 'AB':  # The same single image on both sides.
    _save(f'{root}/train{side}/x.png', img)
    _save(f'{root}/test{side}/x.png', img)
  c = _cfg(**{'data.dataset': 'unpaired_folder', 'data.data_path': root, 'batch_size': 2,
              'model.g_norm': 'instance'})
  src = unpaired.get_source(c)
  it = unpaired.as_numpy(unpaired.train_dataset(c, src, 2))
  batches = [next(it) for _ in range(4)]
  for b in batches:
    assert b['A'].shape == b['B'].shape == (2, 32, 32, 3)
    assert b['A'].dtype == np.float32 and -1 <= b['A'].min() and b['A'].max() <= 1
  a = np.concatenate([b['A'] for b in batches])
  b_ = np.concatenate([b['B'] for b in batches])
  # Crops and flips are drawn separately for A and B: the same source image differs.
  assert sum(not np.allclose(x, y) for x, y in zip(a, b_)) >= 6
  assert len({x.tobytes() for x in a}) >= 6  # And across time.
  resumed = unpaired.as_numpy(unpaired.train_dataset(c, src, 2, start_step=2))
  for want in batches[2:]:
    got = next(resumed)
    np.testing.assert_array_equal(got['A'], want['A'])
    np.testing.assert_array_equal(got['B'], want['B'])


def test_epoch_is_the_larger_side(tmp_path):
  root = _folder(str(tmp_path / 'd'), n_a=5, n_b=2, bad=False)
  c = _cfg(**{'data.dataset': 'unpaired_folder', 'data.data_path': root})
  assert unpaired.steps_per_epoch(c, unpaired.get_source(c)) == 5
  c.batch_size = 2
  assert unpaired.steps_per_epoch(c, unpaired.get_source(c)) == 2


def test_eval_dataset_one_side(tmp_path):
  root = _folder(str(tmp_path / 'd'), bad=False)
  c = _cfg(**{'data.dataset': 'unpaired_folder', 'data.data_path': root})
  src = unpaired.get_source(c)
  (b,) = list(unpaired.as_numpy(unpaired.eval_dataset(c, src, 'B', 4)))
  assert b['image'].shape == (1, 32, 32, 1) and list(b['name']) == [b't']


def test_cycle_gan_manual_zip(tmp_path):
  root = _folder(str(tmp_path / 'src' / 'horse2zebra'), bad=False)
  z = tmp_path / 'horse2zebra.zip'
  with zipfile.ZipFile(z, 'w') as f:
    for dirpath, _, files in os.walk(root):
      for name in files:
        full = os.path.join(dirpath, name)
        f.write(full, os.path.relpath(full, tmp_path / 'src'))
  c = _cfg(**{'data.dataset': 'cycle_gan/horse2zebra', 'data.manual_dir': str(z),
              'data.data_dir': str(tmp_path / 'tfds')})
  src = unpaired.get_source(c)
  assert (src.num_images('A', 'train'), src.num_images('B', 'test')) == (3, 1)
  assert os.path.isdir(tmp_path / 'tfds' / 'manual_extracted' / 'horse2zebra')
  # The folder itself works as manual_dir too.
  c.data.manual_dir = str(tmp_path / 'src')
  assert unpaired.get_source(c).num_images('B', 'train') == 2
  with pytest.raises(DataError, match='Unknown cycle_gan dataset'):
    unpaired.TfdsCycleGanSource('horse2cat')


def test_unknown_dataset_lists_the_unpaired_options():
  with pytest.raises(DataError, match='cycle_gan/<name>'):
    unpaired.get_source(_cfg(**{'data.dataset': 'nope'}))
