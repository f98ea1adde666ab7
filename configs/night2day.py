"""pix2pix on night2day, day -> night (paper Appendix 6.2): 17,823 training pairs,
17 epochs (75,735 steps of 4 pairs), batch 4, constant lr, jitter (286 -> 256) and mirroring.

Data: A = night photo, B = day photo (Transient Attributes webcams); the paper's day ->
night task is BtoA (for night -> day set --config.data.direction=AtoB). The first run
builds ``p2p_paired/night2day`` from the download (night2day.tar.gz) or offline from
``--config.data.manual_dir`` (the .tar.gz or its extracted folder); later runs need
neither. Building cuts every pair in two and stores both halves as JPEG (quality 95):
expect minutes per 10,000 pairs on 2 cores::

  python -m p2p_jax.main --config=configs/night2day.py --workdir=/tmp/night2day \\
      --config.data.manual_dir=/path/to/night2day.tar.gz

Expect ``Prepared p2p_paired/night2day ...: train 17823, val 10, test 2287 pairs``, then
75,735 steps (test, not the 10-pair val, is the eval split).
Samples under WORKDIR/samples/ darken the sky, light up windows and street lamps and
keep the scene layout.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper  # noqa: E402


def get_config():
  c = paper.get_config()
  c.batch_size = 4
  c.num_train_steps = '17ep'
  c.optim.lr_decay_epochs = 0  # Constant lr: the paper's 17 epochs end long before epoch 100.
  c.data.dataset = 'night2day'
  c.data.direction = 'BtoA'  # A = night, B = day: day -> night.
  return c
