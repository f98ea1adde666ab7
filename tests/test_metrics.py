"""Pure metric functions: perfect scores for identical images, poor ones for noise."""

import numpy as np
import pytest

from p2p_jax import metrics


def _images(seed=0, shape=(3, 32, 32, 3)):
  return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _smooth(seed=0, n=3, size=32):
  """Smooth colourful images (gradients), more like photos than noise."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:size, 0:size] / size
  out = []
  for _ in range(n):
    a, b, c = rng.uniform(-1, 1, 3)
    out.append(np.stack([np.sin(3 * xx + a), np.cos(2 * yy + b), np.sin(xx + yy + c)], -1))
  return np.asarray(out, np.float32) * 0.8


def test_identical_images_score_perfectly():
  x = _smooth()
  assert metrics.l1(x, x) == 0.0
  assert metrics.psnr(x, x) == metrics.PSNR_CAP
  assert metrics.ssim(x, x) == pytest.approx(1.0, abs=1e-4)
  h = metrics.lab_histograms(x)
  for ch in 'Lab':
    assert metrics.histogram_intersection(h[ch], h[ch]) == pytest.approx(1.0)


def test_noise_scores_poorly():
  x = _smooth()
  noise = _images(1)
  assert metrics.l1(noise, x) > 0.4
  assert metrics.psnr(noise, x) < 12.0
  assert metrics.ssim(noise, x) < 0.1


def test_metrics_order_small_and_large_errors():
  x = _smooth()
  near = np.clip(x + 0.02 * _images(2), -1, 1)
  far = np.clip(x + 0.5 * _images(3), -1, 1)
  assert metrics.l1(near, x) < metrics.l1(far, x)
  assert metrics.psnr(near, x) > metrics.psnr(far, x) > 0
  assert metrics.ssim(near, x) > metrics.ssim(far, x)
  # Per-image values: one per image, in [-1, 1] range semantics.
  assert metrics.l1_per_image(near, x).shape == (3,)
  # Single images (no batch axis) work too, and tiny ones (SSIM window shrinks).
  assert metrics.ssim(x[0, :8, :8], x[0, :8, :8]) == pytest.approx(1.0, abs=1e-4)


def test_psnr_matches_definition():
  x = np.zeros((1, 8, 8, 3), np.float32)
  y = x + 0.2  # 0.1 in [0, 1] units -> MSE 0.01 -> 20 dB.
  assert metrics.psnr(y, x) == pytest.approx(20.0, abs=1e-3)


def test_shape_mismatch_is_an_error():
  with pytest.raises(ValueError, match='differ in shape'):
    metrics.l1(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 8, 1)))


def test_rgb_to_lab_known_colours():
  lab = metrics.rgb_to_lab(np.array([[1, 1, 1], [0, 0, 0], [1, 0, 0], [0, 0, 1]], np.float32))
  np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.05)
  np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.05)
  np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.05)
  np.testing.assert_allclose(lab[3], [32.30, 79.19, -107.86], atol=0.05)
  import jax.numpy as jnp
  np.testing.assert_allclose(np.asarray(metrics.rgb_to_lab(jnp.asarray([[1., 0, 0]]), jnp)),
                             lab[2:3], atol=1e-3)


def test_greyish_images_lose_colourfulness():
  x = _smooth()
  grey = np.repeat(x.mean(-1, keepdims=True), 3, axis=-1)
  washed = 0.3 * x + 0.7 * grey  # What an L1-only model tends to produce.
  hx = metrics.lab_histograms(x)
  hw = metrics.lab_histograms(washed)
  hg = metrics.lab_histograms(grey)
  for ch in 'ab':
    assert (metrics.histogram_intersection(hg[ch], hx[ch])
            < metrics.histogram_intersection(hw[ch], hx[ch]) < 1.0)
  assert metrics.mean_chroma(grey) < 1.0 < metrics.mean_chroma(washed) < metrics.mean_chroma(x)
  # Histograms of batches add up to the histogram of the whole.
  total = metrics.add_histograms(metrics.lab_histograms(x[:1]), metrics.lab_histograms(x[1:]))
  np.testing.assert_array_equal(total['a'], hx['a'])


def test_histogram_intersection_bounds():
  assert metrics.histogram_intersection([1, 0], [0, 3]) == 0.0
  assert metrics.histogram_intersection([2, 2], [1, 1]) == 1.0
  assert metrics.histogram_intersection([1, 3], [3, 1]) == pytest.approx(0.5)


def test_confusion_matrix_and_scores():
  true = np.array([0, 0, 0, 1, 1, 2, 255])
  pred = np.array([0, 0, 1, 1, 0, 2, 1])
  conf = metrics.confusion_matrix(pred, true, 3)
  np.testing.assert_array_equal(conf, [[2, 1, 0], [1, 1, 0], [0, 0, 1]])  # 255 ignored.
  s = metrics.segmentation_scores(conf)
  assert s['pixel_acc'] == pytest.approx(4 / 6)
  assert s['class_acc'] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
  assert s['class_iou'] == pytest.approx((2 / 4 + 1 / 3 + 1) / 3)
  # Perfect prediction; a class absent from the truth is left out of the means.
  perfect = metrics.segmentation_scores(metrics.confusion_matrix(true[:6], true[:6], 4))
  assert perfect == {'pixel_acc': 1.0, 'class_acc': 1.0, 'class_iou': 1.0}
  acc, iou = metrics.per_class_scores(metrics.confusion_matrix(true[:6], true[:6], 4))
  assert np.isnan(acc[3]) and np.isnan(iou[3]) and acc[:3].tolist() == [1, 1, 1]
  with pytest.raises(ValueError, match='predicted classes'):
    metrics.confusion_matrix(np.array([5]), np.array([0]), 3)


def test_random_predictions_score_poorly():
  rng = np.random.default_rng(0)
  true = rng.integers(0, 12, 10_000)
  s = metrics.segmentation_scores(metrics.confusion_matrix(rng.integers(0, 12, 10_000), true, 12))
  assert s['pixel_acc'] < 0.15 and s['class_acc'] < 0.15 and s['class_iou'] < 0.1
