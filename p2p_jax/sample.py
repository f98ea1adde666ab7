"""``--mode=sample``: translate images with a trained checkpoint; an HTML gallery of results.

  python -m p2p_jax.main --mode=sample --workdir=W [--config.sample.FIELD=VALUE ...]

The checkpoint alone defines the model: ``--config`` is optional (see :func:`merge_config`
for what is read from it). The eval split is translated, or every image of
``--config.sample.input_dir`` (images of the *input* side, e.g. label maps for a
labels -> photo run; resized to a square of ``sample.image_size``). Written to
``WORKDIR/translated/step_<N>[_<S>px][_conventional][_<input folder>]/`` (or
``sample.output_dir``):

* ``<name>.png`` - one image per input: input | output(s) | target (if there is one);
* ``images/<name>_input.png``, ``<name>_output[_k].png``, ``<name>_target.png``;
* ``index.html`` - a gallery table of them with the settings used.

The last line printed is the directory written.

Inference follows the paper by default (``sample.paper_mode=True``: dropout on, BatchNorm
with the statistics of the batch being translated - batch 1 by default, i.e. instance
normalisation); ``False`` gives the conventional mode (running averages, no dropout, so
every sample of one input is the same). ``sample.seed`` fixes the dropout noise, and
``sample.num_samples`` > 1 draws several outputs per input. The U-Net is fully
convolutional: ``sample.image_size`` may exceed the training size (any multiple of
``2**num_downs``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import time

import jax
import ml_collections
import numpy as np
from absl import logging
from PIL import Image

from p2p_jax import checkpoints, gallery, images, inference
from p2p_jax.errors import ConfigError, DataError
from p2p_jax.models.factory import check_image_size
from p2p_jax.train_step import create_train_state, make_networks

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp', '.webp')
# Data fields that are paths on the machine that samples (taken from --config when set).
PATH_FIELDS = ('data_dir', 'manual_dir', 'data_path')

_DEFAULT_SAMPLE = dict(step=-1, input_dir='', image_size=-1, num_samples=1, paper_mode=True,
                       seed=0, max_images=-1, output_dir='')


# ----------------------------------------------------------------------------- config


def merge_config(saved: ml_collections.ConfigDict,
                 cli: ml_collections.ConfigDict | None) -> ml_collections.ConfigDict:
  """The configuration for sampling / evaluating a checkpoint.

  Everything (model, loss, image_size, data set and direction, ...) comes from the
  checkpoint's stored config ``saved``, except, from the command line's ``cli``:

  * the whole ``sample`` section (and the ``fcn`` section, if ``cli`` has one);
  * ``data.data_dir``, ``data.manual_dir`` and ``data.data_path`` when set (non-empty):
    paths may differ on the machine that samples. Empty ones keep the checkpoint's.
  """
  merged = ml_collections.ConfigDict(saved.to_dict())
  if cli is not None:
    if 'sample' in cli:
      merged.sample = ml_collections.ConfigDict(cli.sample.to_dict())
    if 'fcn' in cli:
      merged.fcn = ml_collections.ConfigDict(cli.fcn.to_dict())
    if 'data' in cli:
      for k in PATH_FIELDS:
        v = cli.data.get(k, '')
        if v:
          merged.data[k] = v
  if 'sample' not in merged:
    merged.sample = ml_collections.ConfigDict(_DEFAULT_SAMPLE)
  for k, v in _DEFAULT_SAMPLE.items():
    if k not in merged.sample:
      merged.sample[k] = v
  return merged


def merged_config(cli: ml_collections.ConfigDict | None, workdir: str,
                  step: int | None = None) -> tuple[ml_collections.ConfigDict, int,
                                                    tuple[int, int]]:
  """(merged config, checkpoint step, (input channels, output channels)) of a workdir.
  ``step`` None: ``cli.sample.step`` (-1 = latest)."""
  if step is None:
    step = int(cli.sample.get('step', -1)) if cli is not None and 'sample' in cli else -1
  ckpt = checkpoints.Checkpointer(workdir, create=False)
  try:
    step, saved, channels = ckpt.restore_meta(step)
  finally:
    ckpt.close()
  return merge_config(saved, cli), step, channels


# ----------------------------------------------------------------------------- restore


@dataclasses.dataclass
class Restored:
  """The generator of one checkpoint."""

  config: ml_collections.ConfigDict  # Merged (see merge_config).
  step: int
  channels: tuple[int, int]  # (input, output) channels.
  generator: object  # Flax module.
  params: object
  batch_stats: object
  workdir: str


def restore(cli: ml_collections.ConfigDict | None, workdir: str,
            step: int | None = None) -> Restored:
  """Restores the generator of ``workdir``'s checkpoint (``sample.step``; latest if -1)."""
  config, step, channels = merged_config(cli, workdir, step)
  nets = make_networks(config, channels[1])
  s = config.image_size
  abstract = jax.eval_shape(lambda: create_train_state(nets, jax.random.key(0),
                                                       (s, s, channels[0]), channels[1]))
  ckpt = checkpoints.Checkpointer(workdir, create=False)
  try:
    state = ckpt.restore_state(abstract, step)
  finally:
    ckpt.close()
  logging.info('restored step %d from %s (%s -> %s, %d px)', step, ckpt.directory,
               config.data.dataset, config.data.direction, config.image_size)
  return Restored(config, step, tuple(channels), nets.g, state.g_params, state.g_batch_stats,
                  workdir)


def sample_key(seed: int, index: int, sample: int = 0) -> jax.Array:
  """Dropout key of batch ``index``, draw ``sample``: a pure function of the seed."""
  return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), index), sample)


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
    self._generate = inference.make_generate_fn(restored.generator, self.paper_mode)

  @classmethod
  def from_workdir(cls, workdir: str, *, step: int = -1, paper_mode: bool = True,
                   seed: int = 0, config: ml_collections.ConfigDict | None = None
                   ) -> 'Translator':
    return cls(restore(config, workdir, step), paper_mode=paper_mode, seed=seed)

  @property
  def config(self) -> ml_collections.ConfigDict:
    return self.restored.config

  def check_size(self, height: int, width: int | None = None,
                 what: str = 'sample.image_size') -> None:
    check_image_size(self.config, height, width, what=what)

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

  def translate_image(self, image, image_size: int | None = None, num_samples: int = 1,
                      index: int = 0) -> list[np.ndarray]:
    """One image (path, PIL image or uint8 array) -> ``num_samples`` uint8 outputs."""
    size = image_size if image_size and image_size > 0 else self.config.image_size
    self.check_size(size)
    x = load_input_image(image, size, self.restored.channels[0])
    return [images.to_uint8(self.translate(x, index, k)[0]) for k in range(num_samples)]


def load_input_image(image, size: int, channels: int) -> np.ndarray:
  """Path / PIL image / uint8 array -> float32 [size, size, channels] in [-1, 1]."""
  if isinstance(image, (str, os.PathLike)):
    try:
      with Image.open(image) as im:
        im.load()
        image = im.copy()
    except (OSError, ValueError) as e:
      raise DataError(f'Cannot read image {image}: {e}') from e
  if isinstance(image, np.ndarray):
    arr = image
    if arr.dtype != np.uint8:
      raise DataError(f'expected a uint8 image array, got {arr.dtype}')
    image = Image.fromarray(arr.squeeze(-1) if arr.ndim == 3 and arr.shape[-1] == 1 else arr)
  if image.mode.startswith('I'):  # 16/32-bit grayscale -> 8 bits.
    a = np.asarray(image).astype(np.float64)
    image = Image.fromarray(np.clip(a / (257.0 if a.max() > 255 else 1.0), 0, 255
                                    ).astype(np.uint8))
  image = image.convert('L' if channels == 1 else 'RGB')
  if image.size != (size, size):
    image = image.resize((size, size), Image.BILINEAR)
  x = np.asarray(image, np.float32).reshape(size, size, channels)
  return x / 127.5 - 1.0


# ----------------------------------------------------------------------------- inputs


def _safe_name(name: str) -> str:
  name = re.sub(r'[^A-Za-z0-9._-]+', '_', name.replace('\\', '/').replace('/', '__'))
  return name.strip('._') or 'image'


def list_input_dir(path: str) -> list[str]:
  """Image files under ``path`` (recursively, sorted; hidden files skipped)."""
  root = os.path.abspath(os.path.expanduser(path))
  if not os.path.isdir(root):
    raise DataError(f'sample.input_dir {root} is not a directory.')
  found = []
  for dirpath, dirnames, files in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
    for f in sorted(files):
      if not f.startswith('.') and f.lower().endswith(IMAGE_EXTENSIONS):
        found.append(os.path.join(dirpath, f))
  if not found:
    raise DataError(f'sample.input_dir {root} holds no images ({", ".join(IMAGE_EXTENSIONS)}).')
  return found


def _folder_batches(config, channels: int, size: int, batch_size: int, max_images: int):
  root = os.path.abspath(os.path.expanduser(config.sample.input_dir))
  files = list_input_dir(root)
  if max_images > 0:
    files = files[:max_images]
  for i in range(0, len(files), batch_size):
    chunk = files[i:i + batch_size]
    x = np.stack([load_input_image(f, size, channels) for f in chunk])
    names = [os.path.splitext(os.path.relpath(f, root))[0] for f in chunk]
    yield {'input': x, 'name': names}


def data_config_at(config: ml_collections.ConfigDict, size: int) -> ml_collections.ConfigDict:
  """``config`` whose eval pipeline yields ``size`` x ``size`` images."""
  c = ml_collections.ConfigDict(config.to_dict())
  c.image_size = int(size)
  if c.data.get('load_size', 0) < size:
    c.data.load_size = int(size)
  return c


def _split_batches(config, size: int, batch_size: int, max_images: int, source=None):
  from p2p_jax.data import pipeline, sources  # TensorFlow only from here.
  c = data_config_at(config, size)
  source = source or sources.get_source(c)
  for b in pipeline.as_numpy(pipeline.eval_dataset(c, source, batch_size,
                                                   max_examples=max_images)):
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in b['name']]
    yield {'input': b['input'], 'target': b['target'], 'name': names}


def batch_size_of(config: ml_collections.ConfigDict) -> int:
  bs = int(config.sample.get('batch_size', 1))
  if bs < 1:
    raise ConfigError(f'sample.batch_size must be >= 1, got {bs}.')
  return bs


def sample_size(config: ml_collections.ConfigDict) -> int:
  s = int(config.sample.image_size)
  size = config.image_size if s <= 0 else s
  check_image_size(config, size, what='sample.image_size')
  return size


def default_output_dir(config: ml_collections.ConfigDict, workdir: str, step: int) -> str:
  s = config.sample
  parts = [f'step_{step}']
  if s.image_size > 0 and s.image_size != config.image_size:
    parts.append(f'{s.image_size}px')
  if not s.paper_mode:
    parts.append('conventional')
  if s.input_dir:
    parts.append(_safe_name(os.path.basename(os.path.normpath(s.input_dir))))
  return os.path.join(os.path.abspath(workdir), 'translated', '_'.join(parts))


# ----------------------------------------------------------------------------- main


def sample(config: ml_collections.ConfigDict | None, workdir: str) -> str:
  """``--mode=sample``: translates the eval split or ``sample.input_dir``; returns the
  output directory (also the last line printed)."""
  restored = restore(config, workdir)
  c = restored.config
  s = c.sample
  size = sample_size(c)
  if s.num_samples < 1:
    raise ConfigError(f'sample.num_samples must be >= 1, got {s.num_samples}.')
  if s.num_samples > 1 and not s.paper_mode:
    logging.warning('sample.num_samples=%d with paper_mode=False: the conventional mode has '
                    'no noise, so all samples of an input are identical.', s.num_samples)
  bs = batch_size_of(c)
  out_dir = os.path.abspath(s.output_dir) if s.output_dir else default_output_dir(
      c, workdir, restored.step)
  img_dir = os.path.join(out_dir, 'images')
  os.makedirs(img_dir, exist_ok=True)
  translator = Translator(restored, paper_mode=s.paper_mode, seed=s.seed)
  in_ch = restored.channels[0]
  if s.input_dir:
    batches = _folder_batches(c, in_ch, size, bs, s.max_images)
    what = os.path.abspath(os.path.expanduser(s.input_dir))
  else:
    batches = _split_batches(c, size, bs, s.max_images)
    what = f'{c.data.dataset} {c.data.eval_split} split'

  t0 = time.time()
  rows, used = [], set()
  for b_index, batch in enumerate(batches):
    outs = [translator.translate(batch['input'], b_index, k) for k in range(s.num_samples)]
    for j, raw_name in enumerate(batch['name']):
      name = _safe_name(raw_name)
      base, n = name, 1
      while name in used:
        n += 1
        name = f'{base}_{n}'
      used.add(name)
      x = images.to_uint8(batch['input'][j])
      ys = [images.to_uint8(o[j]) for o in outs]
      t = images.to_uint8(batch['target'][j]) if 'target' in batch else None
      rel_in = f'images/{name}_input.png'
      images.save_png(os.path.join(out_dir, rel_in), x)
      rel_outs = []
      for k, y in enumerate(ys):
        rel = f'images/{name}_output.png' if s.num_samples == 1 else \
            f'images/{name}_output_{k + 1}.png'
        images.save_png(os.path.join(out_dir, rel), y)
        rel_outs.append(rel)
      rel_t = None
      if t is not None:
        rel_t = f'images/{name}_target.png'
        images.save_png(os.path.join(out_dir, rel_t), t)
      images.save_png(os.path.join(out_dir, f'{name}.png'),
                      images.row(x, *ys, *([t] if t is not None else [])))
      rows.append(gallery.Row(raw_name, rel_in, tuple(rel_outs), rel_t))
  if not rows:
    raise DataError(f'Nothing to translate in {what}.')
  elapsed = time.time() - t0
  settings = {
      'workdir': os.path.abspath(workdir), 'checkpoint step': restored.step,
      'inputs': what, 'direction': c.data.direction,
      'inference': ('paper (dropout on, test-batch BatchNorm statistics)' if s.paper_mode
                    else 'conventional (running averages, no dropout)'),
      'seed': s.seed, 'samples per input': s.num_samples, 'batch size': bs,
      'image size': f'{size} px (trained at {c.image_size} px)',
      'written': time.strftime('%Y-%m-%d %H:%M:%S'),
  }
  gallery.write(out_dir, rows, title=f'p2p_jax translations, step {restored.step}',
                settings=settings, display_width=max(size, 128) if size < 128 else None)
  logging.info('translated %d image(s) in %.1f s', len(rows), elapsed)
  print(f'translated {len(rows)} image(s) from {what} at {size} px with the checkpoint of '
        f'step {restored.step} ({"paper" if s.paper_mode else "conventional"} mode, seed '
        f'{s.seed}); gallery: {os.path.join(out_dir, "index.html")}', flush=True)
  print(out_dir, flush=True)
  return out_dir
