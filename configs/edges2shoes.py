"""pix2pix on edges2shoes, edges -> shoe photo (paper Appendix 6.2): 49,825 training pairs,
15 epochs (186,840 steps of 4 pairs), batch 4, constant lr, jitter (286 -> 256) and mirroring.

Data: A = edge map (HED edges), B = photo (UT Zappos50K shoes). The first run builds
``p2p_paired/edges2shoes`` from the download (edges2shoes.tar.gz) or offline from
``--config.data.manual_dir`` (the .tar.gz or its extracted folder); later runs need
neither. Building cuts every pair in two and stores both halves as JPEG (quality 95):
expect minutes per 10,000 pairs on 2 cores::

  python -m p2p_jax.main --config=configs/edges2shoes.py --workdir=/tmp/edges2shoes \\
      --config.data.manual_dir=/path/to/edges2shoes.tar.gz

Expect ``Prepared p2p_paired/edges2shoes ...: train 49825, val 200 pairs``, then 186,840 steps.
Samples under WORKDIR/samples/ fill the sketched outline with plausible shoe colours and
materials; outputs for one input vary little with the dropout noise, as the paper notes.
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
  c.data.dataset = 'edges2shoes'
  c.data.direction = 'AtoB'  # A = edges, B = photo: edges -> photo.
  c.data.eval_split = 'val'
  return c
