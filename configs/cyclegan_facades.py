"""CycleGAN on CMP Facades (paper Fig. 8 and appendix): 400 photos and 400 label maps used
unpaired, 256 px. With ``direction=BtoA`` the model's A is the label map and B the
photo (A = photo in the distributed set, as for pix2pix), so G_A: labels -> photo and
G_B: photo -> labels. 200 epochs of 400 steps (80,000). Offline:
``--config.data.manual_dir=facades.zip``; or the pix2pix copy used as unpaired:
``--config.data.dataset=facades --config.data.manual_dir=../shared/data/facades``::

  python -m p2p_jax.main --config=configs/cyclegan_facades.py --workdir=/tmp/cg_facades
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyclegan_paper  # noqa: E402


def get_config():
  c = cyclegan_paper.get_config()
  c.data.dataset = 'cycle_gan/facades'
  c.data.direction = 'BtoA'
  c.data.eval_split = 'test'
  return c
