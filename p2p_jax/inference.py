"""Running the generator outside training: jitted generation and :class:`Translator`.

Paper mode (default, pix2pix Sec. 3.3): dropout on and BatchNorm with the statistics of
the batch being translated (the running averages are not used or updated; at batch 1 this
is instance normalisation). Conventional mode: running averages, no dropout.

No TensorFlow, except :meth:`Translator.load_image` (it resizes with the data pipeline's
resize, so an image is prepared exactly as the eval split is).
"""

from __future__ import annotations

import os
from typing import Callable

import jax
import ml_collections
import numpy as np

from p2p_jax import gan, images
from p2p_jax.errors import DataError
from p2p_jax.restore import Restored, restore_generator
from p2p_jax.rng import make_key

GenerateFn = Callable[[dict, dict, jax.Array, jax.Array], jax.Array]


_CACHE: dict = {}


def make_generate_fn(generator, paper_mode: bool = True) -> GenerateFn:
  """Returns jitted ``generate(params, batch_stats, x, key) -> G(x)`` in [-1, 1].

  One function per (architecture, mode) in a process, so that training's sample grids,
  periodic evaluation and the sampler share compiled code.
  """
  g = generator.clone(axis_name=None)
  key = (repr(g), bool(paper_mode))
  if key not in _CACHE:
    _CACHE[key] = _build(g, bool(paper_mode))
  return _CACHE[key]


def _build(g, paper_mode: bool) -> GenerateFn:

  def generate(params, batch_stats, x, key):
    variables = {'params': params, 'batch_stats': batch_stats}
    if paper_mode:
      y, _ = g.apply(variables, x, train=True, dropout=True, rngs={'dropout': key},
                     mutable=['batch_stats'])
    else:
      y = g.apply(variables, x, train=False, dropout=False)
    return y

  return jax.jit(generate)


def sample_key(seed: int, index: int, sample: int = 0) -> jax.Array:
  """Dropout key of batch ``index``, draw ``sample``: a pure function of the seed."""
  return jax.random.fold_in(jax.random.fold_in(make_key(seed), index), sample)


class Translator:
  """Translates images with a restored generator (notebook-friendly).

  ``translate(x, index, sample)`` maps a batch in [-1, 1] to outputs in [-1, 1];
  ``translate_image(img)`` takes a path, PIL image or uint8 array and returns uint8
  outputs.
  """

  def __init__(self, restored: Restored, *, paper_mode: bool = True, seed: int = 0):
    self.restored = restored
    self.paper_mode = bool(paper_mode)
    self.seed = int(seed)
    self._generate = make_generate_fn(restored.generator, self.paper_mode)

  @classmethod
  def from_workdir(cls, workdir: str | os.PathLike, *, step: int = -1,
                   paper_mode: bool = True, seed: int = 0,
                   config: ml_collections.ConfigDict | None = None,
                   direction: str | None = None) -> 'Translator':
    """The generator of a workdir's checkpoint (CycleGAN: ``direction`` 'AtoB', the
    default, or 'BtoA')."""
    return cls(restore_generator(config, str(workdir), step, direction),
               paper_mode=paper_mode, seed=seed)

  @property
  def config(self) -> ml_collections.ConfigDict:
    return self.restored.config

  def check_size(self, height: int, width: int | None = None,
                 what: str = 'sample.image_size') -> None:
    gan.get_model(self.config).check_image_size(self.config, height, width, what=what)

  def translate(self, x: np.ndarray, index: int = 0, sample: int = 0) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim == 3:
      x = x[None]
    self.check_size(x.shape[1], x.shape[2])
    if x.shape[-1] != self.restored.channels[0]:
      raise DataError(f'The model takes {self.restored.channels[0]}-channel inputs, got '
                      f'{x.shape[-1]} channel(s).')
    out = self._generate(self.restored.params, self.restored.batch_stats, x,
                         sample_key(self.seed, index, sample))
    return np.asarray(out)

  def load_image(self, image, image_size: int | None = None) -> np.ndarray:
    """One image (path, PIL image or uint8 array) as a model input: float32
    [size, size, input channels] in [-1, 1] (the training size by default)."""
    from p2p_jax.data import pipeline  # TensorFlow only from here.
    size = image_size if image_size and image_size > 0 else self.config.image_size
    self.check_size(size)
    return pipeline.image_input(image, size, self.restored.channels[0])

  def translate_image(self, image, image_size: int | None = None, num_samples: int = 1,
                      index: int = 0) -> list[np.ndarray]:
    """One image (path, PIL image or uint8 array) -> ``num_samples`` uint8 outputs."""
    x = self.load_image(image, image_size)
    return [images.to_uint8(self.translate(x, index, k)[0]) for k in range(num_samples)]
