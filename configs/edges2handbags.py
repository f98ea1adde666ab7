"""pix2pix on edges2handbags, edges -> handbag photo (paper Appendix 6.2): 138,567 training pairs,
15 epochs (519,615 steps of 4 pairs), batch 4, constant lr, jitter (286 -> 256) and mirroring.

Data: A = edge map (HED edges), B = photo (Amazon handbags from iGAN). The first run builds
``p2p_paired/edges2handbags`` from the download (edges2handbags.tar.gz) or offline from
``--config.data.manual_dir`` (the .tar.gz or its extracted folder); later runs need
neither. Building cuts every pair in two and stores both halves as JPEG (quality 95):
expect minutes per 10,000 pairs on 2 cores::

  python -m p2p_jax.main --config=configs/edges2handbags.py --workdir=/tmp/edges2handbags \\
      --config.data.manual_dir=/path/to/edges2handbags.tar.gz

Expect ``Prepared p2p_paired/edges2handbags ...: train 138567, val 200 pairs``, then 519,615 steps.
Samples under WORKDIR/samples/ fill the sketched outline with plausible handbag colours
and textures.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper  # noqa: E402


def get_config():
  c = paper.get_config()
  c.batch_size = 4
  c.num_train_steps = '15ep'
  c.optim.lr_decay_epochs = 0  # Constant lr: the paper's 15 epochs end long before epoch 100.
  c.data.dataset = 'edges2handbags'
  c.data.direction = 'AtoB'  # A = edges, B = photo: edges -> photo.
  c.data.eval_split = 'val'
  return c
