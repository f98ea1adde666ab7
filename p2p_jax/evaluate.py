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

CycleGAN (``sample.direction``: ``both`` by default, or ``AtoB`` / ``BtoA``): the keys
above per direction, prefixed ``AtoB/`` (G_A) and ``BtoA/`` (G_B), where the unpaired data
is a paired dataset used as unpaired (so each test input has its true translation; on
labels <-> photo data this is the CycleGAN paper's Tables 2 and 3: the FCN-score of
labels -> photo, the label accuracies and IoU of photo -> labels), and always
``<direction>/cycle_l1``: mean |G_back(G(x)) - x| over the test inputs ([-1, 1] units).
On truly unpaired data (tfds cycle_gan, trainA/ trainB/ folders) only ``cycle_l1``.
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


def _segmenter(configs: dict[str, ml_collections.ConfigDict], paired_source,
               notes: list[str]):
  """The FCN-score segmenter (trained on first use) if one of ``configs`` (the evaluated
  generators' data configs by prefix) translates labels -> photo on a dataset with
  classes, else None; why the others get no FCN-score goes into ``notes``."""
  seg = None
  for prefix, c in configs.items():
    note = _fcn_note(c, prefix)
    if note is not None:
      logging.info('%sFCN-score skipped: %s.', prefix, note)
      notes.append(f'{prefix}FCN-score skipped: {note}.')
    elif seg is None:
      t0 = time.time()
      seg = segmenter_training.load_or_train(c, paired_source)
      logging.info('FCN-score segmenter ready in %.0f s: %s', time.time() - t0, seg.path)
  return seg


def _fcn_note(config: ml_collections.ConfigDict, prefix: str) -> str | None:
  """Why the FCN-score does not apply (None if it does, or for a CycleGAN direction that
  translates photo -> labels, which the label metrics score instead)."""
  note = evaluation.fcn_not_applicable(config)
  if note is not None and prefix and evaluation.translates_to_labels(config):
    return None
  return note


def _evaluate_one(r: restore.Restored, data, bs: int, segmenter, notes: list[str]
                  ) -> tuple[dict, int, dict | None]:
  """(metrics, number of images, per-class FCN scores or None) of generator ``r``."""
  s = r.config.sample
  translator = inference.Translator(r, paper_mode=s.paper_mode, seed=s.seed)
  back = inference.Translator(r.inverse).translate if r.inverse is not None else None
  cfg = data.direction_config(r.name)
  pairs = data.eval_pairs(r.name, bs, max_examples=s.max_images)
  if pairs is None:
    notes.append(f'{r.name}: unpaired test data (no true translations): cycle L1 only.')
  fcn = pairs is not None and evaluation.fcn_not_applicable(cfg) is None
  result, count, acc = evaluation.generator_metrics(
      translator.translate,
      pairs if pairs is not None else data.eval_inputs(r.name, bs, max_examples=s.max_images),
      cfg, paired=pairs is not None, back=back, segmenter=segmenter if fcn else None,
      fcn_note=_fcn_note(cfg, '' if r.inverse is None else r.name))
  if count == 0:
    raise DataError(f'The {r.config.data.eval_split} split is empty.')
  per_class = acc.per_class() if acc is not None and acc.segmenter is not None else None
  return result, count, per_class


def evaluate(config: ml_collections.ConfigDict | None, workdir: str) -> dict:
  """``--mode=evaluate``; returns the dict written to ``WORKDIR/metrics.json``."""
  from p2p_jax.data import model_data  # TensorFlow only from here.

  generators = restore.restore_generators(config, workdir)
  chosen = restore.select(generators, next(iter(generators.values())).config)
  c, step = chosen[0].config, chosen[0].step
  s = c.sample
  if s.image_size > 0 and s.image_size != c.image_size:
    logging.warning('evaluate runs at the training size %d px; sample.image_size=%d is '
                    'ignored.', c.image_size, s.image_size)
  data = model_data.for_config(c)
  notes: list[str] = []
  prefixes = {r.name: '' if r.inverse is None else f'{r.name}/' for r in chosen}
  segmenter = _segmenter({prefixes[r.name]: data.direction_config(r.name) for r in chosen}
                         if data.paired_source is not None else {},
                         data.paired_source, notes)
  bs = restore.sample_batch_size(c)
  t0 = time.time()
  result: dict = {}
  counts: dict[str, int] = {}
  per_class: dict = {}
  for r in chosen:
    prefix = prefixes[r.name]
    m, counts[r.name], pc = _evaluate_one(r, data, bs, segmenter, notes)
    result.update({prefix + k: v for k, v in m.items()})
    if pc is not None:
      per_class[prefix + 'fcn_per_class'] = pc
  elapsed = time.time() - t0
  out = dict(result)
  out.update({
      'step': step,
      'num_images': counts[chosen[0].name] if len(counts) == 1 else counts,
      'settings': {'dataset': c.data.dataset, 'split': c.data.eval_split,
                   'direction': c.data.direction, 'image_size': c.image_size,
                   'paper_mode': bool(s.paper_mode), 'seed': int(s.seed),
                   'batch_size': bs, 'max_images': int(s.max_images)},
  })
  if chosen[0].inverse is not None:
    out['settings']['generators'] = [r.name for r in chosen]
  if segmenter is not None:
    out['fcn_segmenter'] = segmenter.path
    out.update(per_class)
  if notes:
    out['notes'] = notes
  out = evaluation.json_safe(out)
  text = json.dumps(out, indent=2, allow_nan=False)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(os.path.abspath(workdir), 'metrics.json')
  for p in (path, os.path.join(os.path.abspath(workdir), f'metrics_step_{step}.json')):
    with open(p, 'w') as f:
      f.write(text + '\n')
  writer = metric_writers.create_default_writer(workdir, asynchronous=False)
  writer.write_scalars(step, evaluation.scalars(result))
  writer.flush()
  writer.close()
  n = sum(counts.values())
  logging.info('evaluated %d image(s) in %.1f s', n, elapsed)
  mode = ('' if chosen[0].inverse is not None else
          f', {"paper" if s.paper_mode else "conventional"} mode')
  print(f'step {step}, {n} {c.data.eval_split} image(s){mode}:\n'
        f'{evaluation.format_table(result)}', flush=True)
  for note in notes:
    print(note, flush=True)
  print(path, flush=True)
  return out
