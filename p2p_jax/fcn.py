"""FCN-score (pix2pix Sec. 4.2, Table 1): a semantic segmenter trained on real photos.

The paper judges generated photos by how well an off-the-shelf segmenter (FCN-8s trained
on real Cityscapes photos) recovers the label map they were generated from. This module
provides the project's own version of that segmenter for the datasets whose label maps
encode classes:

* **Which datasets have classes** (:func:`class_spec`): ``embedded`` and ``facades`` -> the
  12 CMP classes, decoded from the label-map colours by
  :func:`p2p_jax.data.facade_labels.rgb_to_labels`; ``cityscapes`` -> the 19 Cityscapes
  training classes, decoded from the colours of the ``gtFine_color`` label maps that the
  pix2pix cityscapes dataset ships (nearest colour of the official palette; void colours
  are ignored). Everything else: no classes, no FCN-score. In all three datasets side A is
  the photo and side B the label map.
* **The segmenter** (:class:`Segmenter`): a small fully convolutional U-Net (3x3 convs,
  stride-2 downsampling, nearest upsampling, skip connections, a 1x1 classifier) trained
  with Adam and per-pixel cross-entropy on (real photo -> class map) pairs from the
  train split, with the same jitter and mirroring as pix2pix training.
* **Cache**: ``<root>/p2p_jax/segmenters/<dataset>_<size>_<hash>/`` holding ``params.npz``
  and ``meta.json``, where ``<root>`` is ``fcn.cache_dir`` if the config has it, else
  ``data.data_dir``, else ``$TFDS_DATA_DIR``, else ``~/.cache``; ``<hash>`` covers the
  dataset contents settings, the image size and the segmenter settings. Evaluation trains
  the segmenter on first use (logging so); ``--mode=train_segmenter`` does it up front.
  Delete the directory to retrain.

Segmenter settings come from an optional ``config.fcn`` section (fields of
:class:`SegmenterConfig`); without one the defaults below apply.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax import traverse_util

from p2p_jax import metrics
from p2p_jax.data import facade_labels
from p2p_jax.errors import ConfigError

FORMAT_VERSION = 1
IGNORE = 255  # Class id of pixels left out of the scores (void).

# ----------------------------------------------------------------------------- classes

# Cityscapes (cityscapesScripts labels.py): (name, trainId, colour) of every label id, in id
# order. trainId 255 = void / ignored in evaluation. Colours shared by several labels decode
# to the first one listed: (0,0,0) -> void, (153,153,153) -> pole, (0,0,142) -> car.
CITYSCAPES_LABELS: tuple[tuple[str, int, tuple[int, int, int]], ...] = (
    ('unlabeled', IGNORE, (0, 0, 0)),
    ('dynamic', IGNORE, (111, 74, 0)),
    ('ground', IGNORE, (81, 0, 81)),
    ('road', 0, (128, 64, 128)),
    ('sidewalk', 1, (244, 35, 232)),
    ('parking', IGNORE, (250, 170, 160)),
    ('rail track', IGNORE, (230, 150, 140)),
    ('building', 2, (70, 70, 70)),
    ('wall', 3, (102, 102, 156)),
    ('fence', 4, (190, 153, 153)),
    ('guard rail', IGNORE, (180, 165, 180)),
    ('bridge', IGNORE, (150, 100, 100)),
    ('tunnel', IGNORE, (150, 120, 90)),
    ('pole', 5, (153, 153, 153)),
    ('traffic light', 6, (250, 170, 30)),
    ('traffic sign', 7, (220, 220, 0)),
    ('vegetation', 8, (107, 142, 35)),
    ('terrain', 9, (152, 251, 152)),
    ('sky', 10, (70, 130, 180)),
    ('person', 11, (220, 20, 60)),
    ('rider', 12, (255, 0, 0)),
    ('car', 13, (0, 0, 142)),
    ('truck', 14, (0, 0, 70)),
    ('bus', 15, (0, 60, 100)),
    ('caravan', IGNORE, (0, 0, 90)),
    ('trailer', IGNORE, (0, 0, 110)),
    ('train', 16, (0, 80, 100)),
    ('motorcycle', 17, (0, 0, 230)),
    ('bicycle', 18, (119, 11, 32)),
)
CITYSCAPES_CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole',
                      'traffic light', 'traffic sign', 'vegetation', 'terrain', 'sky',
                      'person', 'rider', 'car', 'truck', 'bus', 'train', 'motorcycle',
                      'bicycle')


@dataclasses.dataclass(frozen=True)
class ClassSpec:
  """How a dataset's label maps encode classes."""

  dataset: str
  names: tuple[str, ...]
  palette: np.ndarray  # uint8 [P, 3] colours that occur in the label maps.
  palette_class: np.ndarray  # int32 [P]: class id of each colour (IGNORE for void).
  photo_side: str = 'A'
  label_side: str = 'B'

  @property
  def num_classes(self) -> int:
    return len(self.names)

  def decode(self, rgb, xp=np, *, max_value: float = 255.0):
    """Colour label map [..., H, W, 3] in [0, max_value] -> int32 class map [..., H, W]
    (nearest palette colour; void colours -> IGNORE)."""
    if self.dataset in ('embedded', 'facades'):
      return facade_labels.rgb_to_labels(rgb, xp, max_value=max_value)
    x = xp.asarray(rgb).astype(xp.float32) * (255.0 / max_value)
    pal = xp.asarray(self.palette, dtype=xp.float32)
    score = xp.sum(pal * pal, axis=-1) - 2.0 * (x @ pal.T)
    return xp.asarray(self.palette_class, dtype=xp.int32)[xp.argmin(score, axis=-1)]

  def decode_model_image(self, x, xp=np):
    """Decodes a label map in the model's [-1, 1] range."""
    return self.decode((x + 1.0) / 2.0, xp, max_value=1.0)


def _facades_spec(name: str) -> ClassSpec:
  return ClassSpec(name, facade_labels.CLASS_NAMES, np.asarray(facade_labels.PALETTE),
                   np.arange(facade_labels.NUM_CLASSES, dtype=np.int32))


def _cityscapes_spec() -> ClassSpec:
  return ClassSpec('cityscapes', CITYSCAPES_CLASSES,
                   np.array([c for _, _, c in CITYSCAPES_LABELS], np.uint8),
                   np.array([t for _, t, _ in CITYSCAPES_LABELS], np.int32))


def class_spec(dataset: str) -> ClassSpec | None:
  """The classes of ``dataset`` (a ``config.data.dataset`` name), or None if its label maps
  (if any) carry no known classes."""
  if dataset in ('embedded', 'facades'):
    return _facades_spec(dataset)
  if dataset == 'cityscapes':
    return _cityscapes_spec()
  return None


def input_side(config: ml_collections.ConfigDict) -> str:
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


# ----------------------------------------------------------------------------- model


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


# ----------------------------------------------------------------------------- cache


def cache_root(config: ml_collections.ConfigDict) -> str:
  """Directory holding ``p2p_jax/segmenters/``."""
  section = config.get('fcn', None)
  explicit = section.get('cache_dir', '') if section is not None else ''
  root = (explicit or config.data.get('data_dir', '') or os.environ.get('TFDS_DATA_DIR', '')
          or os.path.join(os.path.expanduser('~'), '.cache'))
  return os.path.abspath(os.path.expanduser(root))


# Data settings that do not change which (photo, labels) pairs the segmenter learns from.
_DATA_KEYS_IGNORED = ('data_dir', 'manual_dir', 'data_path', 'direction', 'eval_split',
                      'shuffle_buffer', 'prefetch', 'strict', 'embedded_num_test')


def cache_key(config: ml_collections.ConfigDict) -> dict:
  data = {k: v for k, v in config.data.to_dict().items() if k not in _DATA_KEYS_IGNORED}
  return {'format': FORMAT_VERSION, 'dataset': config.data.dataset,
          'image_size': int(config.image_size), 'data': data,
          'segmenter': segmenter_config(config).to_dict()}


def cache_dir(config: ml_collections.ConfigDict) -> str:
  key = cache_key(config)
  digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
  return os.path.join(cache_root(config), 'p2p_jax', 'segmenters',
                      f'{config.data.dataset}_{int(config.image_size)}_{digest}')


# ----------------------------------------------------------------------------- trained net


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


def _check_size(config, scfg: SegmenterConfig):
  mult = 2 ** (len(scfg.features) - 1)
  if config.image_size % mult:
    raise ConfigError(f'The FCN-score segmenter needs image sides that are multiples of '
                      f'{mult}; image_size is {config.image_size}.')


def _save(path: str, params, meta: dict) -> None:
  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix='.tmp_', dir=parent)
  try:
    flat = traverse_util.flatten_dict(jax.device_get(params), sep='/')
    np.savez(os.path.join(tmp, 'params.npz'), **{k: np.asarray(v) for k, v in flat.items()})
    with open(os.path.join(tmp, 'meta.json'), 'w') as f:
      json.dump(meta, f, indent=2, sort_keys=True)
    if os.path.isdir(path):  # Another process finished first: keep its copy.
      shutil.rmtree(tmp)
      return
    os.replace(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def load_segmenter(config: ml_collections.ConfigDict) -> TrainedSegmenter | None:
  """The cached segmenter for this config, or None if there is none (or no classes)."""
  spec = class_spec(config.data.dataset)
  if spec is None:
    return None
  path = cache_dir(config)
  params_file = os.path.join(path, 'params.npz')
  if not os.path.isfile(params_file):
    return None
  with np.load(params_file) as z:
    params = traverse_util.unflatten_dict({k: jnp.asarray(z[k]) for k in z.files}, sep='/')
  meta = {}
  if os.path.isfile(os.path.join(path, 'meta.json')):
    with open(os.path.join(path, 'meta.json')) as f:
      meta = json.load(f)
  scfg = segmenter_config(config)
  return TrainedSegmenter(spec, Segmenter(spec.num_classes, scfg.features), params, path, meta)


def _segmenter_data_config(config: ml_collections.ConfigDict, scfg: SegmenterConfig):
  c = ml_collections.ConfigDict(config.to_dict())
  c.data.direction = 'AtoB'  # input = side A, target = side B, whatever the run's direction.
  c.batch_size = scfg.batch_size
  c.seed = scfg.seed
  c.steps_per_dispatch = 1
  return c


def train_segmenter(config: ml_collections.ConfigDict, source=None, *,
                    log_every: int = 100) -> TrainedSegmenter:
  """Trains the segmenter for ``config``'s dataset and image size and caches it."""
  from p2p_jax.data import pipeline, sources  # TensorFlow only from here.

  spec = class_spec(config.data.dataset)
  if spec is None:
    raise ConfigError(f'Dataset {config.data.dataset!r} has no known label classes; the '
                      'FCN-score segmenter exists for embedded, facades and cityscapes.')
  scfg = segmenter_config(config)
  _check_size(config, scfg)
  source = source or sources.get_source(config)
  dcfg = _segmenter_data_config(config, scfg)
  photo_key = 'input' if spec.photo_side == 'A' else 'target'
  label_key = 'target' if photo_key == 'input' else 'input'
  it = pipeline.as_numpy(pipeline.train_dataset(dcfg, source, scfg.batch_size))

  module = Segmenter(spec.num_classes, scfg.features)
  size = config.image_size
  channels = source.channels_a if spec.photo_side == 'A' else source.channels_b
  params = module.init(jax.random.key(scfg.seed),
                       jnp.zeros((1, size, size, channels), jnp.float32))['params']
  schedule = optax.cosine_decay_schedule(scfg.lr, max(scfg.num_steps, 1), alpha=0.05)
  tx = optax.adam(schedule)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, photo, labels_rgb):
    classes = spec.decode_model_image(labels_rgb, jnp)
    valid = classes != IGNORE
    target = jnp.where(valid, classes, 0)

    def loss_fn(p):
      logits = module.apply({'params': p}, photo)
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, target)
      ce = jnp.sum(ce * valid) / jnp.maximum(jnp.sum(valid), 1)
      acc = jnp.sum((jnp.argmax(logits, -1) == target) * valid) / jnp.maximum(
          jnp.sum(valid), 1)
      return ce, acc

    (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, acc

  path = cache_dir(config)
  logging.info('Training the FCN-score segmenter for %s at %d px (%d steps, batch %d); it '
               'is cached in %s', config.data.dataset, size, scfg.num_steps, scfg.batch_size,
               path)
  print(f'training the FCN-score segmenter ({config.data.dataset}, {size} px, '
        f'{scfg.num_steps} steps); cache: {path}', flush=True)
  t0 = time.time()
  loss = acc = float('nan')
  for i in range(scfg.num_steps):
    batch = next(it)
    params, opt_state, loss, acc = step(params, opt_state, batch[photo_key], batch[label_key])
    if (i + 1) % log_every == 0 or i + 1 == scfg.num_steps:
      logging.info('segmenter step %d/%d | loss %.4f | pixel acc %.3f | %.0f s', i + 1,
                   scfg.num_steps, float(loss), float(acc), time.time() - t0)
  elapsed = time.time() - t0
  meta = {'key': cache_key(config), 'classes': list(spec.names),
          'train_seconds': round(elapsed, 1), 'final_loss': float(loss),
          'final_train_pixel_acc': float(acc)}
  _save(path, params, meta)
  logging.info('Segmenter trained in %.0f s (final loss %.4f, train pixel acc %.3f): %s',
               elapsed, float(loss), float(acc), path)
  return TrainedSegmenter(spec, module, params, path, meta)


def get_segmenter(config: ml_collections.ConfigDict, source=None, *,
                  train_if_missing: bool = True) -> TrainedSegmenter | None:
  """The cached segmenter, trained first if missing (and allowed); None without classes."""
  if class_spec(config.data.dataset) is None:
    return None
  seg = load_segmenter(config)
  if seg is not None:
    logging.info('Using the cached FCN-score segmenter %s', seg.path)
    return seg
  if not train_if_missing:
    return None
  logging.info('No cached FCN-score segmenter in %s: training one now.', cache_dir(config))
  return train_segmenter(config, source)


def score_real_photos(config: ml_collections.ConfigDict, seg: TrainedSegmenter, source=None,
                      max_examples: int = -1, batch_size: int = 8) -> dict[str, float]:
  """FCN-scores of the real photos of the eval split (the upper bound of Table 1)."""
  from p2p_jax.data import pipeline, sources

  source = source or sources.get_source(config)
  dcfg = _segmenter_data_config(config, segmenter_config(config))
  photo_key = 'input' if seg.spec.photo_side == 'A' else 'target'
  label_key = 'target' if photo_key == 'input' else 'input'
  conf = np.zeros((seg.spec.num_classes,) * 2, np.int64)
  for batch in pipeline.as_numpy(pipeline.eval_dataset(dcfg, source, batch_size,
                                                       max_examples=max_examples)):
    conf += seg.confusion(batch[photo_key], seg.spec.decode_model_image(batch[label_key]))
  return metrics.segmentation_scores(conf)


def main(config: ml_collections.ConfigDict, workdir: str | None) -> TrainedSegmenter:
  """``--mode=train_segmenter``: trains (or finds) the segmenter, prints its real-photo
  scores on the eval split and its directory (the last line).

  With a ``--workdir`` holding checkpoints, the dataset and image size are the run's (as
  for ``--mode=evaluate``); otherwise they come from ``--config``.
  """
  if workdir and os.path.isdir(os.path.join(workdir, 'checkpoints')):
    from p2p_jax import sample
    config, step, _ = sample.merged_config(config, workdir)
    logging.info('Segmenter for the run in %s (step %d): dataset %s, %d px', workdir, step,
                 config.data.dataset, config.image_size)
  from p2p_jax.data import sources
  source = sources.get_source(config)
  seg = get_segmenter(config, source)
  if seg is None:
    raise ConfigError(f'Dataset {config.data.dataset!r} has no known label classes.')
  scores = score_real_photos(config, seg, source)
  print(f'segmenter on real {config.data.eval_split} photos: pixel acc '
        f'{scores["pixel_acc"]:.3f}, class acc {scores["class_acc"]:.3f}, class IoU '
        f'{scores["class_iou"]:.3f}', flush=True)
  print(seg.path, flush=True)
  return seg


__all__ = ['CITYSCAPES_LABELS', 'CITYSCAPES_CLASSES', 'IGNORE', 'ClassSpec', 'class_spec',
           'input_side', 'fcn_not_applicable', 'Segmenter', 'SegmenterConfig',
           'segmenter_config', 'cache_root', 'cache_key', 'cache_dir', 'TrainedSegmenter',
           'load_segmenter', 'train_segmenter', 'get_segmenter', 'score_real_photos', 'main']
