"""Evaluating a generator: which metrics apply to a run, running them, periodic evaluation.

The metrics themselves are in :mod:`p2p_jax.metrics`; the FCN-score's segmenter in
:mod:`p2p_jax.segmenter`. Used by ``--mode=evaluate`` (:mod:`p2p_jax.evaluate`),
``--mode=train_segmenter`` and, during training, :func:`make_periodic_evaluator`.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

import ml_collections
import numpy as np
from absl import logging

from p2p_jax import gan, inference, metrics, restore
from p2p_jax.data.label_classes import class_spec
from p2p_jax.segmenter import cache as segmenter_cache
from p2p_jax.segmenter import training as segmenter_training
from p2p_jax.segmenter.model import TrainedSegmenter, segmenter_config


def input_side(config: ml_collections.ConfigDict) -> str:
  """The dataset side ('A' or 'B') the generator translates from."""
  return 'A' if config.data.direction == 'AtoB' else 'B'


def fcn_not_applicable(config: ml_collections.ConfigDict) -> str | None:
  """None if the FCN-score applies to this run (labels -> photo on a dataset with
  classes), else the reason it does not."""
  spec = class_spec(config.data.dataset)
  if spec is None:
    return (f'dataset {config.data.dataset!r} has no known label classes (FCN-score needs '
            'embedded, facades or cityscapes)')
  if input_side(config) != spec.label_side:
    return (f'the run translates photo -> labels (direction {config.data.direction}); '
            'FCN-score measures generated photos')
  return None


def translates_to_labels(config: ml_collections.ConfigDict) -> bool:
  """True for a photo -> labels run on a dataset with classes: its outputs are scored as
  label maps (``labels_*``)."""
  spec = class_spec(config.data.dataset)
  return spec is not None and input_side(config) == spec.photo_side


def metrics_accumulator(config: ml_collections.ConfigDict,
                        segmenter: TrainedSegmenter | None = None,
                        fcn_note: str | None = None) -> metrics.MetricsAccumulator:
  """An accumulator of the metrics that apply to ``config``'s run."""
  return metrics.MetricsAccumulator(class_spec(config.data.dataset), segmenter,
                                    labels_mode=translates_to_labels(config),
                                    fcn_note=fcn_note)


Translate = Callable[[np.ndarray, int], np.ndarray]


def generator_metrics(translate: Translate, batches: Iterable[dict],
                      config: ml_collections.ConfigDict, *, paired: bool = True,
                      back: Translate | None = None,
                      segmenter: TrainedSegmenter | None = None, fcn_note: str | None = None
                      ) -> tuple[dict, int, metrics.MetricsAccumulator | None]:
  """One generator's metrics: ``translate(x, batch_index) -> y`` over ``batches``.

  ``paired``: the batches hold each input's true translation ('target'), scored by the
  metrics that apply to ``config`` (see :func:`metrics_accumulator`). ``back`` (CycleGAN:
  the other generator): adds ``cycle_l1``, the mean \|back(translate(x)) - x\| over the
  inputs. Returns (metrics, number of inputs, the accumulator or None)."""
  acc = metrics_accumulator(config, segmenter, fcn_note) if paired else None
  cycle: list[float] = []
  count = 0
  for i, b in enumerate(batches):
    x = b['input']
    y = translate(x, i)
    if acc is not None:
      acc.add(x, y, b['target'])
    if back is not None:
      cycle.extend(metrics.l1_per_image(back(y, i), x))
    count += len(x)
  result = acc.result() if acc is not None and count else {}
  if back is not None:
    result['cycle_l1'] = float(np.mean(cycle)) if cycle else None
  return result, count, acc


def scalars(m: dict) -> dict:
  """The finite numbers of a metrics dict, as TensorBoard scalars ``eval/<metric>``."""
  return {f'eval/{k}': v for k, v in m.items()
          if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None
          and np.isfinite(v)}


def json_safe(v):
  """NaN / infinity -> None (null), so a metrics file is strict JSON."""
  if isinstance(v, dict):
    return {k: json_safe(x) for k, x in v.items()}
  if isinstance(v, (list, tuple)):
    return [json_safe(x) for x in v]
  if isinstance(v, float) and not np.isfinite(v):
    return None
  return v


def format_table(m: dict) -> str:
  """One line per metric: name and value (``n/a`` for None)."""
  lines = []
  for k, v in m.items():
    if isinstance(v, float):
      lines.append(f'  {k:24s} {v:.4f}')
    elif v is None:
      lines.append(f'  {k:24s} n/a')
  return '\n'.join(lines)


def score_real_photos(config: ml_collections.ConfigDict, seg: TrainedSegmenter, source=None,
                      max_examples: int = -1, batch_size: int = 8) -> dict[str, float]:
  """FCN-scores of the real photos of the eval split (the upper bound of Table 1)."""
  from p2p_jax.data import pipeline, sources  # TensorFlow only from here.

  source = source or sources.get_source(config)
  dcfg = segmenter_training.data_config(config, segmenter_config(config))
  photo_key = 'input' if seg.spec.photo_side == 'A' else 'target'
  label_key = 'target' if photo_key == 'input' else 'input'
  conf = np.zeros((seg.spec.num_classes,) * 2, np.int64)
  for batch in pipeline.as_numpy(pipeline.eval_dataset(dcfg, source, batch_size,
                                                       max_examples=max_examples)):
    conf += seg.confusion(batch[photo_key], seg.spec.decode_model_image(batch[label_key]))
  return metrics.segmentation_scores(conf)


def make_periodic_evaluator(config: ml_collections.ConfigDict, data, nets, writer):
  """For training: ``evaluator(step, state)`` computes the metrics of the first
  ``config.num_eval_images`` test inputs of each translating generator (a fixed subset, a
  fixed dropout key, paper mode) and writes them as ``eval/<metric>`` scalars (CycleGAN:
  ``eval/AtoB/<metric>`` and ``eval/BtoA/<metric>``, with each direction's ``cycle_l1``).

  ``data`` is the run's :mod:`p2p_jax.data.model_data` object; a generator whose data has
  no true translations (truly unpaired data) gets only its ``cycle_l1``. The FCN-score is
  included when the segmenter for this config is already cached (train it with
  ``--mode=train_segmenter``); periodic evaluation never trains it."""
  model = gan.get_model(config)
  n = max(1, int(config.num_eval_images))
  bs = restore.sample_batch_size(config)
  seed = int(config.sample.get('seed', 0)) if 'sample' in config else 0
  subsets: dict = {}  # Generator name -> (data config, batches, whether they hold targets).
  said = []
  seg_cache = []

  def subset(name):
    if name not in subsets:
      pairs = data.eval_pairs(name, bs, max_examples=n)
      batches = (list(pairs) if pairs is not None else
                 list(data.eval_inputs(name, bs, max_examples=n)))
      subsets[name] = (data.direction_config(name), batches, pairs is not None)
    return subsets[name]

  def segmenter(cfg):
    if not seg_cache:
      seg = segmenter_cache.load(cfg)
      if seg is None and not said:
        said.append(True)
        logging.info('Periodic evaluation without FCN-score: no cached segmenter in %s (run '
                     '--mode=train_segmenter once to include it).',
                     segmenter_cache.cache_dir(cfg))
      if seg is not None:
        seg_cache.append(seg)
    return seg_cache[0] if seg_cache else None

  def translate_fn(gen):
    module, params, stats, _ = gen
    generate = inference.make_generate_fn(module, paper_mode=True)
    return lambda x, i: np.asarray(generate(params, stats, x, inference.sample_key(seed, i)))

  def evaluator(step: int, state) -> dict:
    t0 = time.time()
    gens = model.generators(nets, {f: getattr(state, f) for f in model.GENERATOR_FIELDS},
                            data.info)
    m: dict = {}
    for name, gen in gens.items():
      cfg, batches, paired = subset(name)
      others = [g for k, g in gens.items() if k != name]  # CycleGAN: translates back.
      seg = segmenter(cfg) if paired and fcn_not_applicable(cfg) is None else None
      result, count, _ = generator_metrics(
          translate_fn(gen), batches, cfg, paired=paired,
          back=translate_fn(others[0]) if others else None, segmenter=seg)
      prefix = '' if len(gens) == 1 else f'{name}/'
      m.update({prefix + k: v for k, v in result.items()})
    writer.write_scalars(int(step), scalars(m))
    logging.info('eval at step %d on %d image(s) per generator (%.1f s): %s', int(step),
                 count, time.time() - t0,
                 ', '.join(f'{k} {v:.4f}' for k, v in m.items() if isinstance(v, float)))
    return m

  return evaluator
