"""Image-quality and segmentation metrics as pure functions (numpy / jax.numpy; no TensorFlow).

Conventions: images are float arrays ``[N, H, W, C]`` (or ``[H, W, C]``) with values in
``[-1, 1]``, the generator's range, unless a function says otherwise.

* :func:`l1` - mean absolute error in that ``[-1, 1]`` range (the quantity the L1 loss
  of training minimises).
* :func:`psnr`, :func:`ssim` - computed by dm-pix on images mapped to ``[0, 1]``; the mean
  over images. PSNR of identical images is infinite; it is capped at :data:`PSNR_CAP`.
* Colourfulness (pix2pix Sec. 4.3, Fig. 7): :func:`rgb_to_lab` (sRGB, D65),
  :func:`lab_histograms` (counts of L, a, b over all pixels; add them up over batches)
  and :func:`histogram_intersection` of the generated vs the real distributions
  (1 = identical, 0 = disjoint).
* Segmentation (FCN-score, pix2pix Sec. 4.2, Table 1): :func:`confusion_matrix`
  accumulated over the test set, then :func:`segmentation_scores`: per-pixel accuracy,
  mean per-class accuracy and mean class IoU.
* :class:`MetricsAccumulator` - all of the above over the batches of an evaluation.
"""

from __future__ import annotations

import functools
import types

import dm_pix
import jax
import numpy as np

from p2p_jax.data.label_classes import IGNORE, ClassSpec

PSNR_CAP = 100.0  # dB; PSNR of identical images (infinite) is reported as this.

# Histogram ranges and bin counts of the Lab channels. sRGB colours span L in [0, 100],
# a in about [-86, 98] and b in about [-108, 95].
LAB_RANGES = {'L': (0.0, 100.0), 'a': (-128.0, 128.0), 'b': (-128.0, 128.0)}
LAB_BINS = {'L': 50, 'a': 64, 'b': 64}  # Bins of 2 units for L, 4 units for a and b.


def _batched(x) -> np.ndarray:
  x = np.asarray(x, np.float32)
  return x[None] if x.ndim == 3 else x


def _check_pair(a, b):
  a, b = _batched(a), _batched(b)
  if a.shape != b.shape:
    raise ValueError(f'images differ in shape: {a.shape} vs {b.shape}')
  if a.ndim != 4:
    raise ValueError(f'expected [N, H, W, C] or [H, W, C] images, got shape {a.shape}')
  return a, b


# ----------------------------------------------------------------------------- pixels


@functools.lru_cache(maxsize=None)
def _jitted_psnr():
  return jax.jit(lambda a, b: dm_pix.psnr((a + 1.0) / 2.0, (b + 1.0) / 2.0))


@functools.lru_cache(maxsize=None)
def _jitted_ssim(size: int):
  return jax.jit(lambda a, b: dm_pix.ssim((a + 1.0) / 2.0, (b + 1.0) / 2.0, max_val=1.0,
                                          filter_size=size, filter_sigma=1.5 * size / 11))


def l1_per_image(a, b) -> np.ndarray:
  """Mean |a - b| of each image ([-1, 1] range): float [N]."""
  a, b = _check_pair(a, b)
  return np.mean(np.abs(a - b), axis=(1, 2, 3))


def psnr_per_image(a, b) -> np.ndarray:
  """PSNR in dB of each image pair after mapping [-1, 1] to [0, 1], capped at PSNR_CAP."""
  a, b = _check_pair(a, b)
  p = np.asarray(_jitted_psnr()(a, b), np.float64)
  return np.minimum(np.nan_to_num(p, nan=PSNR_CAP, posinf=PSNR_CAP), PSNR_CAP)


def ssim_per_image(a, b) -> np.ndarray:
  """SSIM (dm-pix: 11x11 Gaussian window, sigma 1.5; smaller for images under 11 px) of
  each image pair after mapping [-1, 1] to [0, 1]: float [N] in [-1, 1]."""
  a, b = _check_pair(a, b)
  size = min(11, a.shape[1], a.shape[2])
  return np.asarray(_jitted_ssim(size)(a, b), np.float64)


def l1(a, b) -> float:
  return float(np.mean(l1_per_image(a, b)))


def psnr(a, b) -> float:
  return float(np.mean(psnr_per_image(a, b)))


def ssim(a, b) -> float:
  return float(np.mean(ssim_per_image(a, b)))


# ----------------------------------------------------------------------------- colour

_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]], np.float32)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883], np.float32)


def rgb_to_lab(rgb, xp: types.ModuleType = np):
  """sRGB in [0, 1] (``[..., 3]``) -> CIE L*a*b* (D65): L in [0, 100], a and b roughly
  in [-128, 127]. ``xp`` is ``numpy`` or ``jax.numpy``."""
  rgb = xp.clip(xp.asarray(rgb, dtype=xp.float32), 0.0, 1.0)
  lin = xp.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
  xyz = (lin @ xp.asarray(_RGB_TO_XYZ).T) / xp.asarray(_WHITE_D65)
  eps = (6.0 / 29.0) ** 3
  f = xp.where(xyz > eps, xp.maximum(xyz, eps) ** (1.0 / 3.0),
               xyz / (3.0 * (6.0 / 29.0) ** 2) + 4.0 / 29.0)
  fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
  return xp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_histograms(images) -> dict[str, np.ndarray]:
  """Counts of the L, a and b values of all pixels of ``images`` (RGB in [-1, 1]):
  ``{'L': int64 [LAB_BINS['L']], 'a': ..., 'b': ...}``. Counts add up across batches."""
  x = _batched(images)
  if x.shape[-1] != 3:
    raise ValueError(f'colour histograms need RGB images, got {x.shape[-1]} channel(s)')
  lab = rgb_to_lab((x + 1.0) / 2.0).reshape(-1, 3)
  out = {}
  for i, ch in enumerate('Lab'):
    lo, hi = LAB_RANGES[ch]
    counts, _ = np.histogram(np.clip(lab[:, i], lo, hi), bins=LAB_BINS[ch], range=(lo, hi))
    out[ch] = counts.astype(np.int64)
  return out


def add_histograms(acc: dict[str, np.ndarray] | None, new: dict[str, np.ndarray]
                   ) -> dict[str, np.ndarray]:
  if acc is None:
    return {k: v.copy() for k, v in new.items()}
  return {k: acc[k] + new[k] for k in acc}


def histogram_intersection(p, q) -> float:
  """sum_i min(p_i, q_i) of the two histograms normalised to sum 1: 1 = same distribution,
  0 = disjoint."""
  p = np.asarray(p, np.float64)
  q = np.asarray(q, np.float64)
  if p.shape != q.shape:
    raise ValueError(f'histograms differ in shape: {p.shape} vs {q.shape}')
  if p.sum() <= 0 or q.sum() <= 0:
    return float('nan')
  return float(np.minimum(p / p.sum(), q / q.sum()).sum())


def mean_chroma(images) -> float:
  """Mean Lab chroma sqrt(a^2 + b^2) of RGB images in [-1, 1]: greyish images score low."""
  lab = rgb_to_lab((_batched(images) + 1.0) / 2.0)
  return float(np.mean(np.hypot(lab[..., 1], lab[..., 2])))


# ----------------------------------------------------------------------------- segmentation


def confusion_matrix(pred, true, num_classes: int, ignore_index: int | None = 255
                     ) -> np.ndarray:
  """int64 [K, K] counts: row = true class, column = predicted class. Pixels whose true
  class is ``ignore_index`` or outside [0, K) are left out. Predictions must be class ids
  in [0, K)."""
  pred = np.asarray(pred).reshape(-1).astype(np.int64)
  true = np.asarray(true).reshape(-1).astype(np.int64)
  if pred.shape != true.shape:
    raise ValueError(f'prediction and truth differ in size: {pred.shape} vs {true.shape}')
  keep = (true >= 0) & (true < num_classes)
  if ignore_index is not None:
    keep &= true != ignore_index
  pred, true = pred[keep], true[keep]
  if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
    raise ValueError(f'predicted classes must be in [0, {num_classes}), got '
                     f'[{pred.min()}, {pred.max()}]')
  return np.bincount(true * num_classes + pred, minlength=num_classes * num_classes
                     ).reshape(num_classes, num_classes).astype(np.int64)


def segmentation_scores(conf) -> dict[str, float]:
  """From a confusion matrix (rows = truth): ``pixel_acc`` = correct / all pixels;
  ``class_acc`` = mean over classes present in the truth of (correct / true pixels of
  the class); ``class_iou`` = mean over the same classes of
  TP / (TP + FP + FN). Classes absent from the truth are left out of both means (the
  reference Caffe script divides by every class instead, which lowers both when classes
  are missing from the test set)."""
  conf = np.asarray(conf, np.float64)
  tp = np.diag(conf)
  true_count = conf.sum(axis=1)
  pred_count = conf.sum(axis=0)
  total = conf.sum()
  present = true_count > 0
  if total <= 0 or not present.any():
    return {'pixel_acc': float('nan'), 'class_acc': float('nan'), 'class_iou': float('nan')}
  acc = tp[present] / true_count[present]
  iou = tp[present] / (true_count + pred_count - tp)[present]
  return {'pixel_acc': float(tp.sum() / total), 'class_acc': float(acc.mean()),
          'class_iou': float(iou.mean())}


def per_class_scores(conf) -> tuple[np.ndarray, np.ndarray]:
  """(accuracy [K], IoU [K]) per class; NaN for classes absent from the truth."""
  conf = np.asarray(conf, np.float64)
  tp = np.diag(conf)
  true_count = conf.sum(axis=1)
  union = true_count + conf.sum(axis=0) - tp
  with np.errstate(invalid='ignore', divide='ignore'):
    acc = np.where(true_count > 0, tp / true_count, np.nan)
    iou = np.where(true_count > 0, tp / union, np.nan)
  return acc, iou


# ----------------------------------------------------------------------------- accumulation

FCN_KEYS = ('fcn_pixel_acc', 'fcn_class_acc', 'fcn_class_iou',
            'fcn_real_pixel_acc', 'fcn_real_class_acc', 'fcn_real_class_iou')
LABEL_KEYS = ('labels_pixel_acc', 'labels_class_acc', 'labels_class_iou')


class MetricsAccumulator:
  """Accumulates the evaluation metrics over batches of (input, output, target) in
  [-1, 1]: L1, PSNR, SSIM; Lab histograms and chroma (RGB outputs); the FCN-score with a
  segmenter (labels -> photo); the decoded label accuracy (photo -> labels)."""

  def __init__(self, spec: ClassSpec | None = None, segmenter=None, *,
               labels_mode: bool = False, fcn_note: str | None = None):
    """
    Args:
      spec: the classes of the dataset's label maps (None: no class metrics).
      segmenter: FCN-score segmenter (``confusion(photos, class_maps)``), or None.
      labels_mode: outputs are label maps (photo -> labels): score their decoded classes.
      fcn_note: why there is no FCN-score; with it the FCN keys are reported as None.
    """
    if (segmenter is not None or labels_mode) and spec is None:
      raise ValueError('class metrics need the class spec of the label maps')
    self.segmenter = segmenter
    self.spec = spec
    self.fcn_note = fcn_note
    self.labels_mode = bool(labels_mode)
    self.l1, self.psnr, self.ssim = [], [], []
    self.hist_fake = self.hist_real = None
    self.chroma_fake, self.chroma_real = [], []
    k = self.spec.num_classes if self.spec else 0
    self.conf_fake = np.zeros((k, k), np.int64)
    self.conf_real = np.zeros((k, k), np.int64)
    self.conf_labels = np.zeros((k, k), np.int64)
    self.count = 0

  def add(self, x, y, t) -> None:
    x, y, t = (np.asarray(a, np.float32) for a in (x, y, t))
    self.l1.extend(l1_per_image(y, t))
    self.psnr.extend(psnr_per_image(y, t))
    self.ssim.extend(ssim_per_image(y, t))
    if y.shape[-1] == 3:
      self.hist_fake = add_histograms(self.hist_fake, lab_histograms(y))
      self.hist_real = add_histograms(self.hist_real, lab_histograms(t))
      self.chroma_fake.append(mean_chroma(y) * len(y))
      self.chroma_real.append(mean_chroma(t) * len(t))
    if self.segmenter is not None:
      classes = self.spec.decode_model_image(x)
      self.conf_fake += self.segmenter.confusion(y, classes)
      self.conf_real += self.segmenter.confusion(t, classes)
    if self.labels_mode and y.shape[-1] == 3:
      self.conf_labels += confusion_matrix(
          self.spec.decode_model_image(y), self.spec.decode_model_image(t),
          self.spec.num_classes, IGNORE)
    self.count += len(y)

  def result(self) -> dict:
    out: dict = {'l1': float(np.mean(self.l1)), 'psnr': float(np.mean(self.psnr)),
                 'ssim': float(np.mean(self.ssim))}
    if self.hist_fake is not None:
      for ch in 'Lab':
        out[f'hist_intersection_{ch}'] = histogram_intersection(
            self.hist_fake[ch], self.hist_real[ch])
      out['chroma_fake'] = float(np.sum(self.chroma_fake) / self.count)
      out['chroma_real'] = float(np.sum(self.chroma_real) / self.count)
    if self.segmenter is not None:
      for prefix, conf in (('fcn_', self.conf_fake), ('fcn_real_', self.conf_real)):
        for k, v in segmentation_scores(conf).items():
          out[prefix + k] = v
    elif self.fcn_note is not None:
      out.update({k: None for k in FCN_KEYS})
    if self.labels_mode and self.conf_labels.sum():
      for k, v in segmentation_scores(self.conf_labels).items():
        out['labels_' + k] = v
    return out

  def per_class(self) -> dict | None:
    if self.segmenter is None:
      return None
    acc_f, iou_f = per_class_scores(self.conf_fake)
    acc_r, iou_r = per_class_scores(self.conf_real)
    clean = lambda v: None if np.isnan(v) else round(float(v), 4)  # noqa: E731
    return {name: {'acc': clean(acc_f[i]), 'iou': clean(iou_f[i]),
                   'real_acc': clean(acc_r[i]), 'real_iou': clean(iou_r[i]),
                   'pixels': int(self.conf_fake[i].sum())}
            for i, name in enumerate(self.spec.names)}


__all__ = ['PSNR_CAP', 'l1', 'psnr', 'ssim', 'l1_per_image', 'psnr_per_image',
           'ssim_per_image', 'rgb_to_lab', 'lab_histograms', 'add_histograms',
           'histogram_intersection', 'mean_chroma', 'confusion_matrix',
           'segmentation_scores', 'per_class_scores', 'FCN_KEYS', 'LABEL_KEYS',
           'MetricsAccumulator']
