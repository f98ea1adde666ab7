"""``--mode=evaluate``: the paper's metrics on the eval split, and periodic evaluation.

  python -m p2p_jax.main --mode=evaluate --workdir=W [--config.sample.FIELD=VALUE ...]

Restores the checkpoint (``sample.step``, latest by default; config merged as in
:func:`p2p_jax.sample.merge_config`), translates the eval split at the training size with
the ``sample`` settings (paper mode, seed, ``max_images``, batch 1 unless
``sample.batch_size``), and writes ``WORKDIR/metrics.json`` (a copy in
``WORKDIR/metrics_step_<N>.json``) and TensorBoard scalars ``eval/<metric>`` at the step.

Metrics (see :mod:`p2p_jax.metrics` and docs/evaluation.md):

* ``l1``, ``psnr``, ``ssim``: output vs target, mean over images.
* ``hist_intersection_L`` / ``_a`` / ``_b``: colourfulness, the intersection of the
  histograms of the Lab channels of all generated vs all real target pixels (paper Fig. 7;
  1 = same distribution). ``chroma_fake`` / ``chroma_real``: mean Lab chroma. RGB outputs
  only.
* ``fcn_pixel_acc``, ``fcn_class_acc``, ``fcn_class_iou``: FCN-score, the project's
  segmenter (:mod:`p2p_jax.fcn`) applied to the generated photos, scored against the
  input label map; ``fcn_real_*``: the same for the real photos (upper bound). Only for
  labels -> photo runs on datasets with classes (embedded, facades, cityscapes);
  otherwise these keys are ``null`` and ``notes`` says why.
* ``labels_pixel_acc``, ``labels_class_acc``, ``labels_class_iou``: photo -> labels runs
  on those datasets: the generated label map decoded to classes vs the real one.
"""

from __future__ import annotations

import json
import os
import time

import ml_collections
import numpy as np
from absl import logging
from clu import metric_writers

from p2p_jax import fcn, inference, metrics, sample as sample_lib
from p2p_jax.errors import DataError

FCN_KEYS = ('fcn_pixel_acc', 'fcn_class_acc', 'fcn_class_iou',
            'fcn_real_pixel_acc', 'fcn_real_class_acc', 'fcn_real_class_iou')
LABEL_KEYS = ('labels_pixel_acc', 'labels_class_acc', 'labels_class_iou')


class MetricsAccumulator:
  """Accumulates metrics over batches of (input, output, target) in [-1, 1]."""

  def __init__(self, config: ml_collections.ConfigDict, segmenter=None,
               fcn_note: str | None = None):
    self.config = config
    self.segmenter = segmenter
    self.spec = fcn.class_spec(config.data.dataset)
    self.fcn_note = fcn_note
    self.labels_mode = (self.spec is not None and
                        fcn.input_side(config) == self.spec.photo_side)
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
    self.l1.extend(metrics.l1_per_image(y, t))
    self.psnr.extend(metrics.psnr_per_image(y, t))
    self.ssim.extend(metrics.ssim_per_image(y, t))
    if y.shape[-1] == 3:
      self.hist_fake = metrics.add_histograms(self.hist_fake, metrics.lab_histograms(y))
      self.hist_real = metrics.add_histograms(self.hist_real, metrics.lab_histograms(t))
      self.chroma_fake.append(metrics.mean_chroma(y) * len(y))
      self.chroma_real.append(metrics.mean_chroma(t) * len(t))
    if self.segmenter is not None:
      classes = self.spec.decode_model_image(x)
      self.conf_fake += self.segmenter.confusion(y, classes)
      self.conf_real += self.segmenter.confusion(t, classes)
    if self.labels_mode and y.shape[-1] == 3:
      self.conf_labels += metrics.confusion_matrix(
          self.spec.decode_model_image(y), self.spec.decode_model_image(t),
          self.spec.num_classes, fcn.IGNORE)
    self.count += len(y)

  def result(self) -> dict:
    out: dict = {'l1': float(np.mean(self.l1)), 'psnr': float(np.mean(self.psnr)),
                 'ssim': float(np.mean(self.ssim))}
    if self.hist_fake is not None:
      for ch in 'Lab':
        out[f'hist_intersection_{ch}'] = metrics.histogram_intersection(
            self.hist_fake[ch], self.hist_real[ch])
      out['chroma_fake'] = float(np.sum(self.chroma_fake) / self.count)
      out['chroma_real'] = float(np.sum(self.chroma_real) / self.count)
    if self.segmenter is not None:
      for prefix, conf in (('fcn_', self.conf_fake), ('fcn_real_', self.conf_real)):
        for k, v in metrics.segmentation_scores(conf).items():
          out[prefix + k] = v
    elif self.fcn_note is not None:
      out.update({k: None for k in FCN_KEYS})
    if self.labels_mode and self.conf_labels.sum():
      for k, v in metrics.segmentation_scores(self.conf_labels).items():
        out['labels_' + k] = v
    return out

  def per_class(self) -> dict | None:
    if self.segmenter is None:
      return None
    acc_f, iou_f = metrics.per_class_scores(self.conf_fake)
    acc_r, iou_r = metrics.per_class_scores(self.conf_real)
    clean = lambda v: None if np.isnan(v) else round(float(v), 4)  # noqa: E731
    return {name: {'acc': clean(acc_f[i]), 'iou': clean(iou_f[i]),
                   'real_acc': clean(acc_r[i]), 'real_iou': clean(iou_r[i]),
                   'pixels': int(self.conf_fake[i].sum())}
            for i, name in enumerate(self.spec.names)}


def run_metrics(translate, batches, config, segmenter=None, fcn_note=None
                ) -> MetricsAccumulator:
  """``translate(x, batch_index) -> y`` over ``batches`` of {'input', 'target'}."""
  acc = MetricsAccumulator(config, segmenter, fcn_note)
  for i, b in enumerate(batches):
    acc.add(b['input'], translate(b['input'], i), b['target'])
  return acc


def _scalars(m: dict) -> dict:
  return {f'eval/{k}': v for k, v in m.items()
          if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None
          and np.isfinite(v)}


def _json_safe(v):
  """NaN / infinity -> None (null), so metrics.json is strict JSON."""
  if isinstance(v, dict):
    return {k: _json_safe(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [_json_safe(x) for x in v]
  if isinstance(v, float) and not np.isfinite(v):
    return None
  return v


def _format_table(m: dict) -> str:
  lines = []
  for k, v in m.items():
    if isinstance(v, float):
      lines.append(f'  {k:24s} {v:.4f}')
    elif v is None:
      lines.append(f'  {k:24s} n/a')
  return '\n'.join(lines)


def evaluate(config: ml_collections.ConfigDict | None, workdir: str) -> dict:
  """``--mode=evaluate``; returns the dict written to ``WORKDIR/metrics.json``."""
  from p2p_jax.data import sources  # TensorFlow only from here.

  restored = sample_lib.restore(config, workdir)
  c = restored.config
  s = c.sample
  if s.image_size > 0 and s.image_size != c.image_size:
    logging.warning('evaluate runs at the training size %d px; sample.image_size=%d is '
                    'ignored.', c.image_size, s.image_size)
  source = sources.get_source(c)
  notes = []
  note = fcn.fcn_not_applicable(c)
  segmenter = None
  if note is None:
    t0 = time.time()
    segmenter = fcn.get_segmenter(c, source)
    logging.info('FCN-score segmenter ready in %.0f s: %s', time.time() - t0, segmenter.path)
  else:
    logging.info('FCN-score skipped: %s.', note)
    notes.append(f'FCN-score skipped: {note}.')

  translator = sample_lib.Translator(restored, paper_mode=s.paper_mode, seed=s.seed)
  batches = sample_lib._split_batches(c, c.image_size, sample_lib.batch_size_of(c),
                                      s.max_images, source)
  t0 = time.time()
  acc = run_metrics(lambda x, i: translator.translate(x, i), batches, c, segmenter, note)
  if acc.count == 0:
    raise DataError(f'The {c.data.eval_split} split is empty.')
  result = acc.result()
  elapsed = time.time() - t0
  out = dict(result)
  out.update({
      'step': restored.step, 'num_images': acc.count,
      'settings': {'dataset': c.data.dataset, 'split': c.data.eval_split,
                   'direction': c.data.direction, 'image_size': c.image_size,
                   'paper_mode': bool(s.paper_mode), 'seed': int(s.seed),
                   'batch_size': sample_lib.batch_size_of(c),
                   'max_images': int(s.max_images)},
  })
  if segmenter is not None:
    out['fcn_segmenter'] = segmenter.path
    out['fcn_per_class'] = acc.per_class()
  if notes:
    out['notes'] = notes
  out = _json_safe(out)
  text = json.dumps(out, indent=2, allow_nan=False)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(os.path.abspath(workdir), 'metrics.json')
  for p in (path, os.path.join(os.path.abspath(workdir), f'metrics_step_{restored.step}.json')):
    with open(p, 'w') as f:
      f.write(text + '\n')
  writer = metric_writers.create_default_writer(workdir, asynchronous=False)
  writer.write_scalars(restored.step, _scalars(result))
  writer.flush()
  writer.close()
  logging.info('evaluated %d image(s) in %.1f s', acc.count, elapsed)
  print(f'step {restored.step}, {acc.count} {c.data.eval_split} image(s), '
        f'{"paper" if s.paper_mode else "conventional"} mode:\n{_format_table(result)}',
        flush=True)
  for n in notes:
    print(n, flush=True)
  print(path, flush=True)
  return out


def make_periodic_evaluator(config: ml_collections.ConfigDict, workdir: str, source, nets,
                            writer):
  """For training: ``evaluator(step, state)`` computes the metrics of the first
  ``config.num_eval_images`` images of the eval split (a fixed subset, a fixed dropout
  key, paper mode) and writes them as ``eval/<metric>`` scalars.

  The FCN-score is included when the segmenter for this config is already cached (train
  it with ``--mode=train_segmenter``); periodic evaluation never trains it."""
  from p2p_jax.data import pipeline

  n = max(1, int(config.num_eval_images))
  bs = int(config.sample.get('batch_size', 1)) if 'sample' in config else 1
  subset = list(pipeline.as_numpy(pipeline.eval_dataset(config, source, bs, max_examples=n)))
  generate = inference.make_generate_fn(nets.g, paper_mode=True)
  seed = int(config.sample.get('seed', 0)) if 'sample' in config else 0
  note = fcn.fcn_not_applicable(config)
  said = []

  def segmenter():
    if note is not None:
      return None
    seg = fcn.load_segmenter(config)
    if seg is None and not said:
      said.append(True)
      logging.info('Periodic evaluation without FCN-score: no cached segmenter in %s (run '
                   '--mode=train_segmenter once to include it).', fcn.cache_dir(config))
    return seg

  seg_cache = []

  def evaluator(step: int, state) -> dict:
    t0 = time.time()
    if not seg_cache or seg_cache[0] is None:
      seg_cache[:] = [segmenter()]
    params, stats = state.g_params, state.g_batch_stats

    def translate(x, i):
      return np.asarray(generate(params, stats, x, sample_lib.sample_key(seed, i)))

    acc = run_metrics(translate, subset, config, seg_cache[0])
    m = acc.result()
    writer.write_scalars(int(step), _scalars(m))
    logging.info('eval at step %d on %d image(s) (%.1f s): %s', int(step), acc.count,
                 time.time() - t0, ', '.join(f'{k} {v:.4f}' for k, v in m.items()
                                              if isinstance(v, float)))
    return m

  return evaluator
