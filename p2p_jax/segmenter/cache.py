"""Trained segmenters on disk: ``<root>/p2p_jax/segmenters/<dataset>_<size>_<hash>/``.

Each directory holds ``params.npz`` and ``meta.json``. ``<root>`` is ``fcn.cache_dir`` if
the config has it, else ``data.data_dir``, else ``$TFDS_DATA_DIR``, else ``~/.cache``;
``<hash>`` covers the dataset contents settings, the image size and the segmenter
settings. Delete a directory to retrain that segmenter. No TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from p2p_jax.data.label_classes import class_spec
from p2p_jax.segmenter.model import Segmenter, TrainedSegmenter, segmenter_config

FORMAT_VERSION = 1


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


def save(path: str, params, meta: dict) -> None:
  """Writes ``params`` and ``meta`` to the cache directory ``path`` (atomically)."""
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


def load(config: ml_collections.ConfigDict) -> TrainedSegmenter | None:
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

