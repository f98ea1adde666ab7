"""``--mode=train_segmenter``: train (or find) the FCN-score segmenter up front.

  python -m p2p_jax.main --mode=train_segmenter [--workdir=W] [--config=...]

With a ``--workdir`` holding checkpoints, the dataset and image size are the run's (as for
``--mode=evaluate``); otherwise they come from ``--config``. Prints the segmenter's scores
on the real photos of the eval split, then its cache directory (the last line). See
:mod:`p2p_jax.segmenter`.
"""

from __future__ import annotations

import os

import ml_collections
from absl import logging

from p2p_jax import evaluation, restore
from p2p_jax.errors import ConfigError
from p2p_jax.segmenter import training as segmenter_training
from p2p_jax.segmenter.model import TrainedSegmenter


def train_segmenter(config: ml_collections.ConfigDict, workdir: str | None
                    ) -> TrainedSegmenter:
  """``--mode=train_segmenter``; returns the trained (or cached) segmenter."""
  from p2p_jax.data import sources  # TensorFlow only from here.

  if workdir and os.path.isdir(os.path.join(workdir, 'checkpoints')):
    config, step, _ = restore.workdir_config(config, workdir)
    logging.info('Segmenter for the run in %s (step %d): dataset %s, %d px', workdir, step,
                 config.data.dataset, config.image_size)
  source = sources.get_source(config)
  seg = segmenter_training.load_or_train(config, source)
  if seg is None:
    raise ConfigError(f'Dataset {config.data.dataset!r} has no known label classes.')
  scores = evaluation.score_real_photos(config, seg, source)
  print(f'segmenter on real {config.data.eval_split} photos: pixel acc '
        f'{scores["pixel_acc"]:.3f}, class acc {scores["class_acc"]:.3f}, class IoU '
        f'{scores["class_iou"]:.3f}', flush=True)
  print(seg.path, flush=True)
  return seg
