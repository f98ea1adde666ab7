"""Image files on disk: which names are images, listing them, opening one. No TensorFlow.

The one place that knows the image extensions the project reads (datasets, custom folders,
``--config.sample.input_dir``) and how a folder of them is listed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from p2p_jax.errors import DataError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.tif', '.tiff', '.bmp', '.webp')


def is_image_name(name: str) -> bool:
  """True for a visible file name (or path) with an image extension."""
  base = name.replace('\\', '/').rsplit('/', 1)[-1]
  return not base.startswith('.') and base.lower().endswith(IMAGE_EXTENSIONS)


def list_images(root: str | os.PathLike, skip: tuple[str, ...] = ()) -> list[Path]:
  """Image files under ``root``, recursively, in sorted order (folder by folder, names
  sorted); hidden files and folders are skipped, and so are the top-level folders named
  in ``skip``."""
  root = Path(root)
  found = []
  for dirpath, dirnames, files in os.walk(root):
    dirnames[:] = sorted(n for n in dirnames
                         if not n.startswith('.') and not (Path(dirpath) == root and n in skip))
    found += [Path(dirpath) / f for f in sorted(files) if is_image_name(f)]
  return found


def open_image(image) -> Image.Image:
  """A path, PIL image or uint8 array as an 8-bit PIL image (16/32-bit grayscale is
  scaled to 8 bits); DataError for a file that cannot be read."""
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
  return image


def read_uint8(image, channels: int) -> np.ndarray:
  """:func:`open_image`, then uint8 [H, W, channels] (grayscale for 1, RGB for 3)."""
  im = open_image(image).convert('L' if channels == 1 else 'RGB')
  x = np.asarray(im, np.uint8)
  return x.reshape(x.shape[0], x.shape[1], channels)
