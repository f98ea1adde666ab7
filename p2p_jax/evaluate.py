"""``--mode=evaluate``: the paper's metrics on the eval split, and periodic evaluation.

  python -m p2p_jax.main --mode=evaluate --workdir=W [--config.sample.FIELD=VALUE ...]

Restores the checkpoint (``sample.step``, latest by default; config merged as in
:func:`p2p_jax.restore.merge_config`), translates the eval split at the training size with
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
  segmenter (:mod:`p2p_jax.segmenter`) applied to the generated photos, scored against the
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
from absl import logging
from clu import metric_writers

from p2p_jax import evaluation, inference, restore
from p2p_jax.errors import DataError
from p2p_jax.segmenter import training as segmenter_training


def evaluate(config: ml_collections.ConfigDict | None, workdir: str) -> dict:
  """``--mode=evaluate``; returns the dict written to ``WORKDIR/metrics.json``."""
  from p2p_jax.data import pipeline, sources  # TensorFlow only from here.

  restored = restore.restore_generator(config, workdir)
  c = restored.config
  s = c.sample
  if s.image_size > 0 and s.image_size != c.image_size:
    logging.warning('evaluate runs at the training size %d px; sample.image_size=%d is '
                    'ignored.', c.image_size, s.image_size)
  source = sources.get_source(c)
  notes = []
  note = evaluation.fcn_not_applicable(c)
  segmenter = None
  if note is None:
    t0 = time.time()
    segmenter = segmenter_training.load_or_train(c, source)
    logging.info('FCN-score segmenter ready in %.0f s: %s', time.time() - t0, segmenter.path)
  else:
    logging.info('FCN-score skipped: %s.', note)
    notes.append(f'FCN-score skipped: {note}.')

  translator = inference.Translator(restored, paper_mode=s.paper_mode, seed=s.seed)
  bs = restore.sample_batch_size(c)
  batches = pipeline.eval_batches(c, bs, size=c.image_size, max_examples=s.max_images,
                                  source=source)
  t0 = time.time()
  acc = evaluation.run_metrics(translator.translate, batches, c, segmenter, note)
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
                   'batch_size': bs, 'max_images': int(s.max_images)},
  })
  if segmenter is not None:
    out['fcn_segmenter'] = segmenter.path
    out['fcn_per_class'] = acc.per_class()
  if notes:
    out['notes'] = notes
  out = evaluation.json_safe(out)
  text = json.dumps(out, indent=2, allow_nan=False)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(os.path.abspath(workdir), 'metrics.json')
  for p in (path, os.path.join(os.path.abspath(workdir), f'metrics_step_{restored.step}.json')):
    with open(p, 'w') as f:
      f.write(text + '\n')
  writer = metric_writers.create_default_writer(workdir, asynchronous=False)
  writer.write_scalars(restored.step, evaluation.scalars(result))
  writer.flush()
  writer.close()
  logging.info('evaluated %d image(s) in %.1f s', acc.count, elapsed)
  print(f'step {restored.step}, {acc.count} {c.data.eval_split} image(s), '
        f'{"paper" if s.paper_mode else "conventional"} mode:\n{evaluation.format_table(result)}',
        flush=True)
  for n in notes:
    print(n, flush=True)
  print(path, flush=True)
  return out
