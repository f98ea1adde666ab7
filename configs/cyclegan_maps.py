"""CycleGAN on maps (paper Sec. 5.1.1, Table 1): 1,096 aerial photos and 1,096 maps from
Google Maps (the pix2pix pairs, used unpaired), 256 px; A = aerial photo, B = map, so
G_A: aerial -> map and G_B: map -> aerial. The paper reports 26.8% of generated aerial
photos and 23.2% of generated maps taken for real by AMT raters. 200 epochs of 1,096
steps. Offline: ``--config.data.manual_dir=maps.zip`` (the CycleGAN release) or use
the pix2pix copy as unpaired with ``--config.data.dataset=maps
--config.data.manual_dir=../shared/data/maps``::

  python -m p2p_jax.main --config=configs/cyclegan_maps.py --workdir=/tmp/cg_maps
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyclegan_paper  # noqa: E402


def get_config():
  c = cyclegan_paper.get_config()
  c.data.dataset = 'cycle_gan/maps'
  c.data.direction = 'AtoB'
  c.data.eval_split = 'test'
  return c
