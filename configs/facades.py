"""pix2pix on CMP Facades, labels -> photo (paper Sec. 4, Appendix 6.2): 400 pairs, 200
epochs (80,000 steps; lr constant to step 40,000, then decaying linearly to 0), batch 1,
random jitter (resize 286, crop 256) and mirroring, U-Net-256 and the 70x70 PatchGAN.

Data: A = photo, B = colour-coded label map (12 classes); BtoA is labels -> photo. The
first run builds the tfds dataset ``p2p_paired/facades`` (under a minute) from the
download, or offline from ``--config.data.manual_dir`` (facades.tar.gz or its extracted folder);
later runs need neither::

  python -m p2p_jax.main --config=configs/facades.py --workdir=/tmp/facades \\
      --config.data.manual_dir=../shared/data/facades

Expect the log line ``Prepared p2p_paired/facades ...: train 400, test 85 pairs`` (the full
release also has val 100 and test 106), then ``length 80000 steps = 200 epochs of 400
steps; lr 0.0002 constant to step 40000 (epoch 100), then decays linearly each epoch to 0 at
step 80000 (epoch 200)``. Samples under WORKDIR/samples/ turn from blurry colour blocks into
facades with windows, balconies and textures that follow the label map. Add
``--config.num_train_steps=1ep`` for a quick end-to-end check (400 steps), or a step count
(``--config.num_train_steps=2``). Rerun with a longer length to resume and train on
(``=300ep``); the lr schedule is fixed in epochs and reaches 0 at epoch 200, so also raise
``--config.optim.lr_decay_epochs`` to keep learning past it.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper  # noqa: E402


def get_config():
  c = paper.get_config()
  c.sample_every_steps = 2000
  c.data.dataset = 'facades'
  c.data.direction = 'BtoA'  # A = photo, B = label map: labels -> photo.
  c.data.eval_split = 'test'
  return c
