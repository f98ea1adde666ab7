"""Geometric preprocessing of an (A, B) pair, applied identically to both sides.

Inputs are float32 images in [0, 1] of the same height and width (any size, 1 or 3
channels per side). Random choices come from a stateless seed, so the pipeline is
deterministic for a given config seed.

Modes follow the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix,
``data/base_dataset.py``, ``get_transform``); ``L`` = ``load_size``, ``S`` = ``crop_size``:

==========================  ==========================================  ======================
mode                        training                                    evaluation
==========================  ==========================================  ======================
``resize_and_crop`` (paper)  resize to L×L, random S×S crop             resize to S×S
``crop``                    random S×S crop of the original             centre S×S crop
                            (the image must be at least S×S)
``scale_width``             width → L, height → max(L·h/w, S), no crop  same as training
``scale_width_and_crop``    as scale_width, then random S×S crop        …, centre S×S crop
``none``                    unchanged, or each side resized to the      same as training
                            nearest multiple of ``size_multiple``
==========================  ==========================================  ======================

Random horizontal mirroring (``flip``) is applied after the geometric step, in training
only. ``scale_width`` and ``none`` keep the aspect ratio, so their outputs differ in size
from image to image unless all images share one size; batching more than one of them needs
equal sizes (use batch size 1 otherwise).

The U-Net needs both sides to be multiples of ``2**num_downs``. ``resize_and_crop``,
``crop`` and ``scale_width_and_crop`` give ``S×S``, so only ``S`` (``config.image_size``)
has to be one. For ``scale_width`` and ``none`` pass ``size_multiple=2**num_downs``: the
free side (``scale_width``: the height) or both sides (``none``) are then resized to the
nearest multiple (at least one multiple), like the reference's ``__make_power_2``; with
the default ``size_multiple=1`` they are left as they are and the caller must ensure it.
"""

from __future__ import annotations

from typing import Iterable

import tensorflow as tf

from p2p_jax.errors import DataError

MODES = ('resize_and_crop', 'crop', 'scale_width', 'scale_width_and_crop', 'none')


def validate(mode: str, load_size: int, crop_size: int, size_multiple: int = 1) -> None:
  """Raises DataError for an unknown mode or sizes that cannot work together."""
  if mode not in MODES:
    raise DataError(f'Unknown data.preprocess mode {mode!r}; choose one of {", ".join(MODES)}.')
  if crop_size < 1 or size_multiple < 1:
    raise DataError(f'crop size ({crop_size}) and size multiple ({size_multiple}) must be >= 1.')
  if mode in ('resize_and_crop', 'scale_width', 'scale_width_and_crop') and load_size < 1:
    raise DataError(f'data.load_size must be >= 1 for preprocess={mode!r}, got {load_size}.')
  if mode in ('resize_and_crop', 'scale_width_and_crop') and load_size < crop_size:
    raise DataError(
        f'data.load_size ({load_size}) is smaller than the crop size image_size '
        f'({crop_size}) with preprocess={mode!r}: set --config.data.load_size to at least '
        f'{crop_size} (the paper uses 286 for 256).')


def _round_to_multiple(n: int, m: int) -> int:
  return max(m, int(round(n / m)) * m)


def _scaled_height(height: int, width: int, load_size: int, crop_size: int) -> int:
  # Reference __scale_width: int(max(target_width * h / w, crop_size)).
  return int(max(load_size * height / width, crop_size))


def output_size(mode: str, height: int, width: int, *, load_size: int, crop_size: int,
                train: bool = True, size_multiple: int = 1) -> tuple[int, int]:
  """The (height, width) that :func:`preprocess_pair` produces for an input of this size."""
  del train  # Same output size in training and evaluation for every mode.
  if mode in ('resize_and_crop', 'crop', 'scale_width_and_crop'):
    return crop_size, crop_size
  if mode == 'scale_width':
    h = _scaled_height(height, width, load_size, crop_size)
    if size_multiple > 1:
      h = _round_to_multiple(h, size_multiple)
    return h, load_size
  if mode == 'none':
    if size_multiple > 1:
      return _round_to_multiple(height, size_multiple), _round_to_multiple(width, size_multiple)
    return height, width
  raise DataError(f'Unknown data.preprocess mode {mode!r}; choose one of {", ".join(MODES)}.')


def check_sizes(mode: str, crop_size: int, sizes: Iterable[tuple[str, int, int]],
                where: str = '') -> None:
  """Raises DataError naming the first image too small for ``mode``.

  Args:
    mode: preprocess mode.
    crop_size: crop side S.
    sizes: (name, height, width) of each input pair.
    where: directory or dataset named in the message.
  """
  if mode != 'crop':
    return  # Every other mode resizes before cropping.
  small = [(n, h, w) for n, h, w in sizes if h < crop_size or w < crop_size]
  if small:
    n, h, w = small[0]
    more = f' (and {len(small) - 1} more)' if len(small) > 1 else ''
    raise DataError(
        f'Image {n!r}{" in " + where if where else ""} is {w}x{h} (WxH){more}, smaller than '
        f'the {crop_size}x{crop_size} crop of preprocess=\'crop\'. Use '
        "--config.data.preprocess=resize_and_crop (or scale_width_and_crop), a smaller "
        '--config.image_size, or remove the image.')


def resize(x: tf.Tensor, h, w) -> tf.Tensor:
  """The resize of every model input: bicubic with antialiasing (as the reference's PIL
  ``BICUBIC``), float [H, W, C] -> [h, w, C]; values may overshoot [0, 1] slightly."""
  return tf.image.resize(x, tf.stack([h, w]), method='bicubic', antialias=True)


def _random_crop(x: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
  return tf.image.stateless_random_crop(x, tf.stack([size, size, tf.shape(x)[-1]]), seed=seed)


def _center_crop(x: tf.Tensor, size: int) -> tf.Tensor:
  shape = tf.shape(x)
  top = (shape[0] - size) // 2
  left = (shape[1] - size) // 2
  return x[top:top + size, left:left + size, :]


def _assert_at_least(x: tf.Tensor, size: int, mode: str) -> tf.Tensor:
  shape = tf.shape(x)
  ok = tf.logical_and(shape[0] >= size, shape[1] >= size)
  check = tf.debugging.Assert(ok, [
      f'preprocess={mode!r}: image smaller than the {size}x{size} crop; shape (H, W, C) is',
      shape])
  with tf.control_dependencies([check]):
    return tf.identity(x)


def _round_multiple_t(n: tf.Tensor, m: int) -> tf.Tensor:
  r = tf.cast(tf.round(tf.cast(n, tf.float32) / m), tf.int32) * m
  return tf.maximum(r, m)


def _scale_width(x: tf.Tensor, load_size: int, crop_size: int, size_multiple: int
                 ) -> tf.Tensor:
  shape = tf.shape(x)
  h = tf.cast(shape[0], tf.float32)
  w = tf.cast(shape[1], tf.float32)
  new_h = tf.cast(tf.maximum(float(load_size) * h / w, float(crop_size)), tf.int32)
  if size_multiple > 1:
    new_h = _round_multiple_t(new_h, size_multiple)
  return resize(x, new_h, load_size)


def preprocess_pair(a: tf.Tensor, b: tf.Tensor, *, mode: str, load_size: int, crop_size: int,
                    flip: bool, train: bool, seed: tf.Tensor | None = None,
                    size_multiple: int = 1) -> tuple[tf.Tensor, tf.Tensor]:
  """Applies the same resize / crop / mirror to ``a`` and ``b``.

  Args:
    a, b: float32 [H, W, C_a] and [H, W, C_b] in [0, 1] (C = 1 or 3).
    mode: one of :data:`MODES` (see the module docstring).
    load_size, crop_size: sizes in pixels (``L`` and ``S`` above).
    flip: random horizontal mirror (train only).
    train: if False, no randomness: the evaluation column of the table above, no mirror.
    seed: int32/int64 [2] stateless seed (required when train is True and the mode crops
      at random or ``flip`` is set).
    size_multiple: 'scale_width' and 'none' resize their free sides to the nearest
      multiple of this (the pipeline passes ``2**num_downs``); 1 leaves them as they are.

  Returns:
    (a, b), float32 in [0, 1], same spatial size, channels unchanged.
  """
  validate(mode, load_size, crop_size, size_multiple)
  random_crop = train and mode in ('resize_and_crop', 'crop', 'scale_width_and_crop')
  if (random_crop or (train and flip)) and seed is None:
    raise ValueError('preprocess_pair needs a stateless seed in training.')
  ca = a.shape[-1] if a.shape.rank and a.shape[-1] is not None else tf.shape(a)[-1]
  ab = tf.concat([a, b], axis=-1)
  if random_crop:
    crop_seed = tf.random.experimental.stateless_fold_in(seed, 0)

  if mode == 'resize_and_crop':
    if train:
      ab = _random_crop(resize(ab, load_size, load_size), crop_size, crop_seed)
    else:
      ab = resize(ab, crop_size, crop_size)
  elif mode == 'crop':
    ab = _assert_at_least(ab, crop_size, mode)
    ab = _random_crop(ab, crop_size, crop_seed) if train else _center_crop(ab, crop_size)
  elif mode == 'scale_width':
    ab = _scale_width(ab, load_size, crop_size, size_multiple)
  elif mode == 'scale_width_and_crop':
    ab = _scale_width(ab, load_size, crop_size, 1)
    ab = _random_crop(ab, crop_size, crop_seed) if train else _center_crop(ab, crop_size)
  elif mode == 'none':
    if size_multiple > 1:
      shape = tf.shape(ab)
      h = _round_multiple_t(shape[0], size_multiple)
      w = _round_multiple_t(shape[1], size_multiple)
      ab = tf.cond(tf.logical_and(tf.equal(h, shape[0]), tf.equal(w, shape[1])),
                   lambda: ab, lambda: resize(ab, h, w))

  if train and flip:
    flip_seed = tf.random.experimental.stateless_fold_in(seed, 1)
    ab = tf.image.stateless_random_flip_left_right(ab, seed=flip_seed)
  ab = tf.clip_by_value(ab, 0.0, 1.0)
  return ab[..., :ca], ab[..., ca:]
