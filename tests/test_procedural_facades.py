"""Procedural facades and the CMP palette: determinism, sizes, classes, photo variation."""

import time

import numpy as np
import pytest

from p2p_jax.data import facade_labels as fl
from p2p_jax.data import procedural_facades


# --- facade_labels -------------------------------------------------------------------


def test_palette_shape_and_distinct():
  assert len(fl.CLASS_NAMES) == fl.NUM_CLASSES == 12
  assert fl.CLASS_NAMES[:3] == ('background', 'facade', 'window')
  assert fl.CLASS_NAMES[fl.SHOP] == 'shop' and fl.CLASS_NAMES[fl.MOLDING] == 'molding'
  assert fl.PALETTE.shape == (12, 3) and fl.PALETTE.dtype == np.uint8
  d = np.linalg.norm(fl.PALETTE[:, None].astype(float) - fl.PALETTE[None].astype(float), axis=-1)
  assert d[~np.eye(12, dtype=bool)].min() > 50  # Far enough apart to survive JPEG noise.


def test_palette_is_jet64_of_cmp():
  """Each class colour is row 5 * (c + 1) of MATLAB's jet(64), to within 1 level."""
  m, n = 64, 16
  u = np.concatenate([np.arange(1, n + 1) / n, np.ones(n - 1), np.arange(n, 0, -1) / n])
  g = n // 2 + np.arange(1, len(u) + 1)
  jet = np.zeros((m, 3))
  for ch, idx in ((0, g + n), (1, g), (2, g - n)):
    ok = (idx >= 1) & (idx <= m)
    jet[idx[ok] - 1, ch] = u[ok]
  want = np.round(jet[5::5][:12] * 255)
  assert np.abs(want - fl.PALETTE).max() <= 1


def test_labels_round_trip():
  rng = np.random.default_rng(0)
  cm = rng.integers(0, 12, (2, 17, 23))
  rgb = fl.labels_to_rgb(cm)
  assert rgb.shape == (2, 17, 23, 3) and rgb.dtype == np.uint8
  out = fl.rgb_to_labels(rgb)
  assert out.dtype == np.int32
  np.testing.assert_array_equal(out, cm)


def test_labels_to_rgb_rejects_bad_ids():
  with pytest.raises(ValueError):
    fl.labels_to_rgb(np.array([[0, 12]]))


def test_rgb_to_labels_robust_to_noise():
  rng = np.random.default_rng(1)
  cm = rng.integers(0, 12, (64, 64))
  noisy = fl.labels_to_rgb(cm).astype(float) + rng.normal(0, 8, (64, 64, 3))
  noisy = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
  assert (fl.rgb_to_labels(noisy) == cm).mean() > 0.99
  # Floats in [0, 1].
  f = fl.labels_to_rgb(cm).astype(np.float32) / 255.0
  np.testing.assert_array_equal(fl.rgb_to_labels(f, max_value=1.0), cm)


def test_rgb_to_labels_jax():
  jnp = pytest.importorskip('jax.numpy')
  import jax
  cm = np.random.default_rng(2).integers(0, 12, (3, 8, 8))
  rgb = fl.labels_to_rgb(cm)
  out = jax.jit(lambda x: fl.rgb_to_labels(x, jnp))(rgb)
  np.testing.assert_array_equal(np.asarray(out), cm)
  np.testing.assert_array_equal(np.asarray(fl.labels_to_rgb(jnp.asarray(cm), jnp)), rgb)


# --- synthetic -----------------------------------------------------------------------


def test_deterministic_by_seed():
  a = procedural_facades.generate_pair(7, 48)
  b = procedural_facades.generate_pair(7, 48)
  c = procedural_facades.generate_pair(8, 48)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a[0], c[0])
  assert not np.array_equal(a[2], c[2])


@pytest.mark.parametrize('size', [16, 33, 64, 100])
def test_shapes_and_types(size):
  photo, labels, cm = procedural_facades.generate_pair(3, size)
  assert photo.shape == labels.shape == (size, size, 3)
  assert photo.dtype == labels.dtype == np.uint8
  assert cm.shape == (size, size) and cm.dtype == np.int32
  np.testing.assert_array_equal(labels, fl.labels_to_rgb(cm))
  np.testing.assert_array_equal(fl.rgb_to_labels(labels), cm)


def test_same_scene_at_every_size():
  small = procedural_facades.generate_pair(11, 64)[2]
  big = procedural_facades.generate_pair(11, 256)[2]
  # Nearest-centre subsampling of the big map lands on the small map's pixel centres.
  sub = big[2::4, 2::4]
  assert (sub == small).mean() > 0.9
  other = procedural_facades.generate_pair(12, 64)[2]
  assert (other == small).mean() < (sub == small).mean()


def test_classes_present():
  counts = np.zeros(12)
  for seed in range(30):
    cm = procedural_facades.generate_pair(seed, 64)[2]
    assert {fl.BACKGROUND, fl.FACADE, fl.WINDOW} <= set(np.unique(cm).tolist())
    assert len(np.unique(cm)) >= 4
    counts += np.bincount(cm.ravel(), minlength=12) > 0
  # Every class shows up in some images; the core ones in (almost) all.
  assert (counts > 0).all(), counts
  assert counts[fl.WINDOW] == 30 and counts[fl.DOOR] + counts[fl.SHOP] >= 30


def test_photo_is_not_a_function_of_labels():
  """Same class, different images: clearly different photo colours; and within one
  image a class is far from flat."""
  walls, glass = [], []
  for seed in range(12):
    photo, _, cm = procedural_facades.generate_pair(seed, 64)
    p = photo.astype(np.float64)
    walls.append(p[cm == fl.FACADE].mean(0))
    glass.append(p[cm == fl.WINDOW].mean(0))
    wall_std = p[cm == fl.FACADE].std(0).mean()
    assert wall_std > 3.0, (seed, wall_std)
  walls, glass = np.array(walls), np.array(glass)
  # Spread of per-image mean wall colour across images (a label-only model can't know it).
  assert walls.std(0).mean() > 15, walls
  assert glass.std(0).mean() > 5, glass
  # Photo colours of one class overlap little with a constant-per-class predictor.
  pooled = []
  for seed in range(6):
    photo, _, cm = procedural_facades.generate_pair(100 + seed, 64)
    pooled.append(photo[cm == fl.FACADE].astype(np.float64))
  pooled = np.concatenate(pooled)
  assert np.abs(pooled - pooled.mean(0)).mean() > 10


def test_photo_looks_plausible():
  photo, _, cm = procedural_facades.generate_pair(5, 64)
  p = photo.astype(np.float64).mean(-1)
  # Windows are darker than the wall on average over several images.
  diffs = []
  for seed in range(10):
    photo, _, cm = procedural_facades.generate_pair(seed, 64)
    g = photo.astype(np.float64).mean(-1)
    diffs.append(g[cm == fl.FACADE].mean() - g[cm == fl.WINDOW].mean())
  assert np.mean(diffs) > 10, diffs
  assert 10 < p.mean() < 245


def test_split_seeds_disjoint():
  tr = {procedural_facades.split_seed('train', i) for i in range(1000)}
  te = {procedural_facades.split_seed('test', i) for i in range(1000)}
  tr1 = {procedural_facades.split_seed('train', i, base_seed=1) for i in range(1000)}
  assert not tr & te and not tr & tr1 and not te & tr1
  with pytest.raises(ValueError):
    procedural_facades.split_seed('bogus', 0)
  names = [x[0] for x in procedural_facades.make_split('test', 3, 16)]
  assert names == ['test_00000', 'test_00001', 'test_00002']
  a = next(procedural_facades.make_split('train', 1, 32))[1]
  b = next(procedural_facades.make_split('test', 1, 32))[1]
  assert not np.array_equal(a, b)


def test_generation_is_fast():
  procedural_facades.generate_pair(0, 256)
  t = time.perf_counter()
  for seed in range(5):
    procedural_facades.generate_pair(seed, 256)
  per = (time.perf_counter() - t) / 5
  assert per < 0.25, per  # ~20 ms on an idle core; generous for loaded CI machines.
