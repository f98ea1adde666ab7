"""The segmenter network, its settings, and a trained instance. No TensorFlow."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from p2p_jax import metrics
from p2p_jax.data.label_classes import IGNORE, ClassSpec
from p2p_jax.errors import ConfigError


class Segmenter(nn.Module):
  """Small fully convolutional U-Net: photo [N, H, W, C] in [-1, 1] -> logits
  [N, H, W, num_classes]. H and W must be multiples of 2**(len(features) - 1)."""

  num_classes: int
  features: tuple[int, ...] = (16, 32, 64, 128)

  @nn.compact
  def __call__(self, x):
    conv = lambda f, s=1, name=None: nn.Conv(f, (3, 3), strides=(s, s), padding='SAME',  # noqa
                                             name=name)
    h = x
    skips = []
    for i, f in enumerate(self.features):
      h = nn.relu(conv(f, 2 if i else 1, f'down{i}a')(h))
      h = nn.relu(conv(f, 1, f'down{i}b')(h))
      skips.append(h)
    for i in reversed(range(len(self.features) - 1)):
      h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
      h = jnp.concatenate([h, skips[i]], axis=-1)
      h = nn.relu(conv(self.features[i], 1, f'up{i}')(h))
    return nn.Conv(self.num_classes, (1, 1), name='classifier')(h)


@dataclasses.dataclass(frozen=True)
class SegmenterConfig:
  """Segmenter settings (override with a ``config.fcn`` section of the same fields)."""

  features: tuple[int, ...] = (16, 32, 64, 128)  # Widths of the U-Net levels.
  num_steps: int = 800  # Adam steps (about 1-2 min at 64 px on 2 CPU cores).
  batch_size: int = 8  # Photos per step.
  lr: float = 2e-3  # Adam learning rate (cosine decay to 5% over num_steps).
  seed: int = 0  # Initialisation and data order.

  def to_dict(self) -> dict:
    d = dataclasses.asdict(self)
    d['features'] = list(self.features)
    return d


def segmenter_config(config: ml_collections.ConfigDict) -> SegmenterConfig:
  section = config.get('fcn', None)
  if section is None:
    return SegmenterConfig()
  fields = {f.name for f in dataclasses.fields(SegmenterConfig)}
  kw = {k: v for k, v in dict(section).items() if k in fields}
  if 'features' in kw:
    kw['features'] = tuple(int(f) for f in kw['features'])
  return SegmenterConfig(**kw)


def check_size(config: ml_collections.ConfigDict, scfg: SegmenterConfig) -> None:
  """ConfigError unless ``config.image_size`` suits the segmenter's depth."""
  mult = 2 ** (len(scfg.features) - 1)
  if config.image_size % mult:
    raise ConfigError(f'The FCN-score segmenter needs image sides that are multiples of '
                      f'{mult}; image_size is {config.image_size}.')


@dataclasses.dataclass
class TrainedSegmenter:
  """A trained segmenter: ``predict(photos in [-1, 1]) -> int32 class maps``."""

  spec: ClassSpec
  module: Segmenter
  params: Any
  path: str | None = None
  meta: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    module = self.module
    self._predict = jax.jit(
        lambda p, x: jnp.argmax(module.apply({'params': p}, x), axis=-1).astype(jnp.int32))

  def predict(self, photos) -> np.ndarray:
    x = np.asarray(photos, np.float32)
    if x.ndim == 3:
      x = x[None]
    return np.asarray(self._predict(self.params, x))

  def confusion(self, photos, label_maps) -> np.ndarray:
    """Confusion matrix of the segmentation of ``photos`` against class maps."""
    return metrics.confusion_matrix(self.predict(photos), label_maps, self.spec.num_classes,
                                     IGNORE)

