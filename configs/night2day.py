"""pix2pix on night2day, day -> night (paper Appendix 6.2): 17,823 training pairs,
17 epochs (75,747 steps), batch 4, jitter (286 -> 256) and mirroring.

Data: A = night photo, B = day photo (Transient Attributes webcams); the paper's day ->
night task is BtoA (for night -> day set --config.data.direction=AtoB). The first run
builds ``p2p_paired/night2day`` from the download (night2day.tar.gz) or offline from
``--config.data.manual_dir`` (the .tar.gz or its extracted folder); later runs need
neither. Building cuts every pair in two and stores both halves as JPEG (quality 95):
expect minutes per 10,000 pairs on 2 cores::

  python -m p2p_jax.main --config=configs/night2day.py --workdir=/tmp/night2day \\
      --config.data.manual_dir=/path/to/night2day.tar.gz

Expect ``Prepared p2p_paired/night2day ...: train 17823, val 10, test 2287 pairs``, then
75,747 steps (test, not the 10-pair val, is the eval split).
Samples under WORKDIR/samples/ darken the sky, light up windows and street lamps and
keep the scene layout.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default  # noqa: E402


def get_config():
  c = default.get_config()
  c.image_size = 256
  c.batch_size = 4
  c.num_epochs = 17
  c.checkpoint_every_steps = 10_000
  c.log_every_steps = 100
  c.sample_every_steps = 5000
  c.data.dataset = 'night2day'
  c.data.direction = 'BtoA'  # A = night, B = day: day -> night.
  c.data.eval_split = 'test'
  c.data.preprocess = 'resize_and_crop'  # Resize to 286, random 256 crop (reference default).
  c.data.load_size = 286
  c.data.no_flip = False
  c.model.num_downs = 8
  c.model.ngf = 64
  c.model.ndf = 64
  return c
