"""The 12 CMP Facades label classes and their colours (no TensorFlow).

The pix2pix ``facades`` label maps (side B) colour each CMP class with one entry of the
64-entry MATLAB ``jet`` colormap: class ``c`` (0-based, CMP order) gets row ``5 * c + 5``
(0-based) of ``jet(64)``, i.e. channel values that are multiples of 255/16. ``PALETTE`` below
is that palette as it appears in the real data: the per-class modes of the colours in
flat regions of the 400 training label maps (they agree with the rounded jet values to within
1 level). The embedded procedural dataset uses the same colours, so both datasets share
one class decoding (:func:`rgb_to_labels`), e.g. for the FCN-score evaluation.

Class semantics (CMP): ``cornice`` is the small head above a window, ``molding`` the long
horizontal band between floors, ``sill`` the ledge under a window, ``blind`` a shutter
beside a window, ``shop`` a ground-floor storefront, ``background`` everything that is not
the facade (sky, roofs, neighbouring buildings, street).
"""

from __future__ import annotations

import types

import numpy as np

CLASS_NAMES: tuple[str, ...] = (
    'background', 'facade', 'window', 'door', 'cornice', 'sill',
    'balcony', 'blind', 'deco', 'molding', 'pillar', 'shop')
NUM_CLASSES = len(CLASS_NAMES)

# Class indices, for readable code elsewhere.
BACKGROUND, FACADE, WINDOW, DOOR, CORNICE, SILL = range(6)
BALCONY, BLIND, DECO, MOLDING, PILLAR, SHOP = range(6, 12)

PALETTE = np.array([
    [0, 0, 222],      # background  (jet64 row 5:  0,     0,     14/16)
    [0, 48, 255],     # facade      (jet64 row 10: 0,     3/16,  1)
    [0, 128, 255],    # window      (jet64 row 15: 0,     8/16,  1)
    [0, 207, 255],    # door        (jet64 row 20: 0,     13/16, 1)
    [32, 255, 224],   # cornice     (jet64 row 25: 2/16,  1,     14/16)
    [112, 255, 142],  # sill        (jet64 row 30: 7/16,  1,     9/16)
    [192, 255, 63],   # balcony     (jet64 row 35: 12/16, 1,     4/16)
    [255, 240, 0],    # blind       (jet64 row 40: 1,     15/16, 0)
    [255, 159, 0],    # deco        (jet64 row 45: 1,     10/16, 0)
    [255, 80, 0],     # molding     (jet64 row 50: 1,     5/16,  0)
    [255, 0, 0],      # pillar      (jet64 row 55: 1,     0,     0)
    [174, 0, 0],      # shop        (jet64 row 60: 11/16, 0,     0)
], dtype=np.uint8)
PALETTE.setflags(write=False)


def labels_to_rgb(class_map, xp: types.ModuleType = np):
  """Colours a class map: int [..., H, W] with values in [0, 12) -> uint8 [..., H, W, 3].

  ``xp`` is the array module (``numpy`` or ``jax.numpy``). With numpy, out-of-range
  classes raise ValueError.
  """
  if xp is np:
    class_map = np.asarray(class_map)
    if class_map.size and (class_map.min() < 0 or class_map.max() >= NUM_CLASSES):
      raise ValueError(f'class ids must be in [0, {NUM_CLASSES}), got '
                       f'[{class_map.min()}, {class_map.max()}]')
    return PALETTE[class_map.astype(np.intp)]
  return xp.asarray(PALETTE)[class_map]


def rgb_to_labels(rgb, xp: types.ModuleType = np, *, max_value: float = 255.0):
  """Decodes a colour-coded label map to classes by the nearest palette colour.

  Args:
    rgb: [..., H, W, 3] colours in ``[0, max_value]`` (uint8 by default; pass
      ``max_value=1.0`` for float images in [0, 1]). Robust to JPEG/resize noise: every
      pixel goes to the palette entry at the smallest Euclidean RGB distance.
    xp: array module, ``numpy`` (default) or ``jax.numpy`` (traceable, jit-able).
    max_value: the value that stands for full intensity.

  Returns:
    int32 [..., H, W] class ids in [0, 12).
  """
  x = xp.asarray(rgb).astype(xp.float32) * (255.0 / max_value)
  pal = xp.asarray(PALETTE, dtype=xp.float32)  # [12, 3]
  # argmin_k |x - p_k|^2 = argmin_k (|p_k|^2 - 2 x . p_k): one small matmul.
  score = xp.sum(pal * pal, axis=-1) - 2.0 * (x @ pal.T)  # [..., 12]
  return xp.argmin(score, axis=-1).astype(xp.int32)
