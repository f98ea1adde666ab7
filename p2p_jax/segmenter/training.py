"""Training the segmenter for a config's dataset and image size, or loading the cached one."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging

from p2p_jax.data.label_classes import IGNORE, class_spec
from p2p_jax.errors import ConfigError
from p2p_jax.rng import make_key
from p2p_jax.segmenter import cache
from p2p_jax.segmenter.model import (Segmenter, SegmenterConfig, TrainedSegmenter, check_size,
                                     segmenter_config)


def data_config(config: ml_collections.ConfigDict, scfg: SegmenterConfig
                ) -> ml_collections.ConfigDict:
  """``config`` whose pipeline yields (photo = input, labels = target) batches."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.data.direction = 'AtoB'  # input = side A, target = side B, whatever the run's direction.
  c.batch_size = scfg.batch_size
  c.seed = scfg.seed
  c.steps_per_dispatch = 1
  return c


def train(config: ml_collections.ConfigDict, source=None, *,
          log_every: int = 100) -> TrainedSegmenter:
  """Trains the segmenter for ``config``'s dataset and image size and caches it."""
  from p2p_jax.data import pipeline, sources  # TensorFlow only from here.

  spec = class_spec(config.data.dataset)
  if spec is None:
    raise ConfigError(f'Dataset {config.data.dataset!r} has no known label classes; the '
                      'FCN-score segmenter exists for embedded, facades and cityscapes.')
  scfg = segmenter_config(config)
  check_size(config, scfg)
  source = source or sources.get_source(config)
  dcfg = data_config(config, scfg)
  photo_key = 'input' if spec.photo_side == 'A' else 'target'
  label_key = 'target' if photo_key == 'input' else 'input'
  it = pipeline.as_numpy(pipeline.train_dataset(dcfg, source, scfg.batch_size))

  module = Segmenter(spec.num_classes, scfg.features)
  size = config.image_size
  channels = source.channels_a if spec.photo_side == 'A' else source.channels_b
  params = module.init(make_key(scfg.seed),
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

  path = cache.cache_dir(config)
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
  meta = {'key': cache.cache_key(config), 'classes': list(spec.names),
          'train_seconds': round(elapsed, 1), 'final_loss': float(loss),
          'final_train_pixel_acc': float(acc)}
  cache.save(path, params, meta)
  logging.info('Segmenter trained in %.0f s (final loss %.4f, train pixel acc %.3f): %s',
               elapsed, float(loss), float(acc), path)
  return TrainedSegmenter(spec, module, params, path, meta)


def load_or_train(config: ml_collections.ConfigDict, source=None, *,
                  train_if_missing: bool = True) -> TrainedSegmenter | None:
  """The cached segmenter, trained first if missing (and allowed); None without classes."""
  if class_spec(config.data.dataset) is None:
    return None
  seg = cache.load(config)
  if seg is not None:
    logging.info('Using the cached FCN-score segmenter %s', seg.path)
    return seg
  if not train_if_missing:
    return None
  logging.info('No cached FCN-score segmenter in %s: training one now.', cache.cache_dir(config))
  return train(config, source)

