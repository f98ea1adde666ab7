"""pix2pix on CMP Facades, labels -> photo (paper Sec. 4, Appendix 6.2): 400 pairs, 200
epochs, batch 1, random jitter (resize 286, crop 256) and mirroring, U-Net-256 and the
70x70 PatchGAN.

  python -m p2p_jax.main --config=configs/facades.py --workdir=/tmp/facades \\
      --config.data.manual_dir=/path/to/facades   # facades.tar.gz or its extracted folder
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default  # noqa: E402


def get_config():
  c = default.get_config()
  c.image_size = 256
  c.batch_size = 1
  c.num_epochs = 200
  c.checkpoint_every_steps = 10_000
  c.log_every_steps = 100
  c.sample_every_steps = 2000
  c.data.dataset = 'facades'
  c.data.direction = 'BtoA'  # A = photo, B = label map: labels -> photo.
  c.data.eval_split = 'test'
  c.data.load_size = 286
  c.model.num_downs = 8
  c.model.ngf = 64
  c.model.ndf = 64
  return c
