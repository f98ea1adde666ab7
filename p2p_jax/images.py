"""Image conversion and writing helpers (numpy + Pillow; no TensorFlow)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image


def to_uint8(x: np.ndarray) -> np.ndarray:
  """[-1, 1] floats -> uint8, any leading shape; 1 channel -> 3 (for display)."""
  x = np.asarray(x, np.float32)
  x = np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  return x


def _fit(img: np.ndarray, h: int, w: int) -> np.ndarray:
  if img.shape[:2] == (h, w):
    return img
  return np.asarray(Image.fromarray(img).resize((w, h), Image.NEAREST))


def row(*images: np.ndarray, pad: int = 2) -> np.ndarray:
  """Side-by-side uint8 images (resized to the first's size), white gaps."""
  h, w = images[0].shape[:2]
  images = [_fit(to_uint8(i) if i.dtype != np.uint8 else i, h, w) for i in images]
  gap = np.full((h, pad, 3), 255, np.uint8)
  parts = []
  for i, img in enumerate(images):
    parts += ([gap] if i else []) + [img]
  return np.concatenate(parts, axis=1)


def grid(columns: list[np.ndarray], pad: int = 2) -> np.ndarray:
  """Rows of examples: ``columns`` are [N, H, W, C] arrays in [-1, 1] (e.g. input, output,
  target); returns one uint8 image with N rows."""
  n = columns[0].shape[0]
  rows = [row(*[c[i] for c in columns], pad=pad) for i in range(n)]
  gap = np.full((pad, rows[0].shape[1], 3), 255, np.uint8)
  out = []
  for i, r in enumerate(rows):
    out += ([gap] if i else []) + [r]
  return np.concatenate(out, axis=0)


def save_png(path: str, image: np.ndarray) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  Image.fromarray(image).save(path)
  return path
