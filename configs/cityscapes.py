"""pix2pix on Cityscapes, labels -> photo (paper Sec. 4.2, Table 1): 2975 training pairs,
200 epochs, batch 1, jitter (286 -> 256) and mirroring, val split for testing.

Cityscapes cannot be downloaded automatically (licence); see docs/datasets.md.

  python -m p2p_jax.main --config=configs/cityscapes.py --workdir=/tmp/cityscapes \\
      --config.data.manual_dir=/path/to/cityscapes
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
  c.sample_every_steps = 5000
  c.data.dataset = 'cityscapes'
  c.data.direction = 'BtoA'  # A = photo, B = label map: labels -> photo.
  c.data.eval_split = 'val'
  c.data.load_size = 286
  c.model.num_downs = 8
  c.model.ngf = 64
  c.model.ndf = 64
  return c
