"""Which datasets' label maps encode semantic classes, and how to decode them. No TensorFlow.

``embedded`` and ``facades``: the 12 CMP classes, decoded from the label-map colours by
:func:`p2p_jax.data.facade_labels.rgb_to_labels`. ``cityscapes``: the 19 Cityscapes
training classes, decoded from the colours of the ``gtFine_color`` label maps that the
pix2pix cityscapes dataset ships (nearest colour of the official palette; void colours are
ignored). Every other dataset: no classes. In all three, side A is the photo and side B
the label map.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from p2p_jax.data import facade_labels

IGNORE = 255  # Class id of pixels left out of the scores (void).


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
