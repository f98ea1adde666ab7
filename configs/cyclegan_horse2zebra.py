"""CycleGAN on horse2zebra (paper Fig. 1, 13): 1,067 horse and 1,334 zebra photos from
ImageNet, 256 px; G_A: horse -> zebra, G_B: zebra -> horse. 200 epochs of 1,334 steps
(266,800 steps). The first run downloads tfds ``cycle_gan/horse2zebra`` (~110 MB);
offline pass the downloaded horse2zebra.zip (or its extracted folder) as
``--config.data.manual_dir``::

  python -m p2p_jax.main --config=configs/cyclegan_horse2zebra.py --workdir=/tmp/h2z
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyclegan_paper  # noqa: E402


def get_config():
  c = cyclegan_paper.get_config()
  c.data.dataset = 'cycle_gan/horse2zebra'
  c.data.direction = 'AtoB'
  c.data.eval_split = 'test'
  return c
