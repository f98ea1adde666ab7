"""Loads a generator written by ``--mode=export`` and translates with it: needs only jax,
numpy and (for image files) Pillow, not p2p_jax.

``--mode=export`` copies this file into the export directory, so the directory alone is
enough::

  import sys; sys.path.insert(0, 'EXPORT_DIR')
  import exported
  g = exported.load('EXPORT_DIR')                  # conventional mode
  y = g(x)                                         # x: [B, H, W, C] float32 in [-1, 1]
  out = g.translate_image('labels.png')            # uint8 [H, W, 3]

  python EXPORT_DIR/exported.py EXPORT_DIR input.png output.png [--paper]

Files of an export directory: ``generator.npz`` (the generator's params and BatchNorm
statistics, keys like ``params/down_0/conv/kernel``), ``generate_conventional.jaxexport``
and ``generate_paper.jaxexport`` (serialized :mod:`jax.export` modules of
``generate(params, batch_stats, x, seed, index, sample)``, batch size free, height and
width fixed at the training size) and ``export.json`` (what was exported).

Modes as in ``--mode=sample``: ``conventional`` uses the running averages and no dropout;
``paper`` keeps dropout on and normalises with the statistics of the batch being translated,
drawing its noise from ``(seed, index, sample)`` exactly as ``sample.seed``, the batch index
and the sample number do in ``--mode=sample``.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import numpy as np

WEIGHTS = 'generator.npz'
META = 'export.json'
MODES = ('conventional', 'paper')


def module_file(mode: str) -> str:
  """The serialized module of ``mode`` ('conventional' or 'paper')."""
  if mode not in MODES:
    raise ValueError(f'mode must be one of {MODES}, got {mode!r}.')
  return f'generate_{mode}.jaxexport'


def unflatten(flat: dict) -> dict:
  """{'a/b/c': array} -> {'a': {'b': {'c': array}}}."""
  tree: dict = {}
  for name, value in flat.items():
    node = tree
    *path, leaf = name.split('/')
    for p in path:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


class ExportedGenerator:
  """A generator loaded from an export directory; call it on [B, H, W, C] in [-1, 1]."""

  def __init__(self, directory: str, mode: str = 'conventional', seed: int = 0):
    directory = os.path.abspath(os.path.expanduser(directory))
    path = os.path.join(directory, module_file(mode))
    if not os.path.isfile(path):
      raise FileNotFoundError(f'{path} not found: is {directory} a --mode=export directory?')
    with open(os.path.join(directory, META)) as f:
      self.meta = json.load(f)
    with open(path, 'rb') as f:
      self.exported = jax.export.deserialize(bytearray(f.read()))
    with np.load(os.path.join(directory, WEIGHTS)) as npz:
      tree = unflatten({k: npz[k] for k in npz.files})
    self.params = tree.get('params', {})
    self.batch_stats = tree.get('batch_stats', {})
    self.mode = mode
    self.seed = int(seed)
    self.image_size = int(self.meta['image_size'])
    self.input_channels, self.output_channels = self.meta['channels']

  def __call__(self, x: np.ndarray, index: int = 0, sample: int = 0) -> np.ndarray:
    """Outputs in [-1, 1] for inputs ``x`` ([B, H, W, C] or [H, W, C], in [-1, 1])."""
    x = np.asarray(x, np.float32)
    if x.ndim == 3:
      x = x[None]
    want = (self.image_size, self.image_size, self.input_channels)
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
      raise ValueError(f'The exported generator takes [batch, {want[0]}, {want[1]}, {want[2]}] '
                       f'inputs, got {list(x.shape)}; resize the image to {want[0]} px.')
    y = self.exported.call(self.params, self.batch_stats, x, np.int32(self.seed),
                           np.int32(index), np.int32(sample))
    return np.asarray(y, np.float32)

  def load_image(self, image) -> np.ndarray:
    """A path, PIL image or uint8 array -> float32 [size, size, C] in [-1, 1] (Pillow's
    bicubic resize; the training pipeline's resize differs by rounding)."""
    from PIL import Image
    if isinstance(image, np.ndarray):
      image = Image.fromarray(image)
    elif not isinstance(image, Image.Image):
      image = Image.open(image)
    image = image.convert('L' if self.input_channels == 1 else 'RGB')
    if image.size != (self.image_size, self.image_size):
      image = image.resize((self.image_size, self.image_size), Image.BICUBIC)
    x = np.asarray(image, np.float32).reshape(self.image_size, self.image_size, -1)
    return x / 127.5 - 1.0

  def translate_image(self, image, index: int = 0, sample: int = 0) -> np.ndarray:
    """One image -> uint8 [size, size, 3] (1-channel outputs repeated to 3)."""
    return to_uint8(self(self.load_image(image), index, sample)[0])


def to_uint8(y: np.ndarray) -> np.ndarray:
  """[-1, 1] floats -> uint8; 1 channel -> 3."""
  y = np.clip(np.round((np.asarray(y, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)
  return np.repeat(y, 3, axis=-1) if y.shape[-1] == 1 else y


def load(directory: str, mode: str = 'conventional', seed: int = 0) -> ExportedGenerator:
  """The generator exported to ``directory`` in ``mode`` ('conventional' or 'paper')."""
  return ExportedGenerator(directory, mode, seed)


def _main(argv: list[str]) -> int:
  args = [a for a in argv if not a.startswith('--')]
  if len(args) != 3:
    print('usage: python exported.py EXPORT_DIR INPUT_IMAGE OUTPUT_PNG [--paper] [--seed=N]',
          file=sys.stderr)
    return 2
  seed = next((int(a.split('=', 1)[1]) for a in argv if a.startswith('--seed=')), 0)
  g = load(args[0], 'paper' if '--paper' in argv else 'conventional', seed)
  from PIL import Image
  Image.fromarray(g.translate_image(args[1])).save(args[2])
  print(args[2])
  return 0


if __name__ == '__main__':
  sys.exit(_main(sys.argv[1:]))
