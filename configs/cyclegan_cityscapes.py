"""CycleGAN on Cityscapes (paper Sec. 5.1, Tables 2-3): 2,975 street photos and 2,975 label
maps used unpaired, 256 px (val 500 for testing). With ``direction=BtoA`` the model's A
is the label map, B the photo: G_A: labels -> photo, G_B: photo -> labels. Paper
FCN-scores: labels -> photo 0.52 / 0.17 / 0.11 (per-pixel acc. / per-class acc. / IoU),
photo -> labels 0.58 / 0.22 / 0.16. 200 epochs of 2,975 steps. The tfds download is
the CycleGAN release; offline pass its cityscapes.zip (or folder) as
``--config.data.manual_dir``::

  python -m p2p_jax.main --config=configs/cyclegan_cityscapes.py --workdir=/tmp/cg_city
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyclegan_paper  # noqa: E402


def get_config():
  c = cyclegan_paper.get_config()
  c.data.dataset = 'cycle_gan/cityscapes'
  c.data.direction = 'BtoA'
  c.data.eval_split = 'test'
  return c
