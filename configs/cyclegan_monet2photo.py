"""CycleGAN on monet2photo (paper Sec. 5.2, Fig. 12, 15): 1,072 Monet paintings and 6,287
landscape photos, 256 px; G_A: Monet -> photo, G_B: photo -> Monet. The paper uses the
identity loss (lambda_identity 0.5, as here) to keep the colours of the input. 200 epochs
of 6,287 steps. Offline: ``--config.data.manual_dir=monet2photo.zip`` (or its folder)::

  python -m p2p_jax.main --config=configs/cyclegan_monet2photo.py --workdir=/tmp/monet
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyclegan_paper  # noqa: E402


def get_config():
  c = cyclegan_paper.get_config()
  c.data.dataset = 'cycle_gan/monet2photo'
  c.data.direction = 'AtoB'
  c.data.eval_split = 'test'
  return c
