"""Geometric preprocessing of an (A, B) pair, applied identically to both sides.

Inputs are float32 images in [0, 1] of the same height and width. Random choices come from
a stateless seed, so the pipeline is deterministic for a given config seed.
"""

from __future__ import annotations

import tensorflow as tf

MODES = ('resize_and_crop', 'none')


def _resize(x: tf.Tensor, h, w) -> tf.Tensor:
  return tf.image.resize(x, (h, w), method='bicubic', antialias=True)


def preprocess_pair(a: tf.Tensor, b: tf.Tensor, *, mode: str, load_size: int, crop_size: int,
                    flip: bool, train: bool, seed: tf.Tensor | None = None
                    ) -> tuple[tf.Tensor, tf.Tensor]:
  """Applies the same resize / crop / mirror to ``a`` and ``b``.

  Args:
    a, b: float32 [H, W, C_a] and [H, W, C_b] in [0, 1].
    mode: 'resize_and_crop' (paper: resize to load_size, random crop_size crop) or 'none'.
    load_size, crop_size: sizes in pixels.
    flip: random horizontal mirror (train only).
    train: if False, no randomness: resize straight to crop_size, no mirror.
    seed: int32/int64 [2] stateless seed (required when train is True).
  """
  ca = tf.shape(a)[-1]
  ab = tf.concat([a, b], axis=-1)
  if mode == 'resize_and_crop':
    if train:
      ab = _resize(ab, load_size, load_size)
      ab = tf.image.stateless_random_crop(
          ab, tf.stack([crop_size, crop_size, tf.shape(ab)[-1]]), seed=seed)
    else:
      ab = _resize(ab, crop_size, crop_size)
  elif mode != 'none':
    raise ValueError(f'Unknown preprocess mode {mode!r}; choose from {MODES}.')
  if train and flip:
    flip_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    ab = tf.image.stateless_random_flip_left_right(ab, seed=flip_seed)
  ab = tf.clip_by_value(ab, 0.0, 1.0)
  return ab[..., :ca], ab[..., ca:]
