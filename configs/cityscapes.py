"""pix2pix on Cityscapes, labels -> photo (paper Sec. 4.2, Table 1): 2975 training pairs,
200 epochs (595,000 steps), batch 1, jitter (286 -> 256) and mirroring; val (500 pairs)
is the test set.

Cityscapes cannot be downloaded automatically (licence). Register at
https://www.cityscapes-dataset.com/, download ``leftImg8bit_trainvaltest.zip`` (photos)
and ``gtFine_trainvaltest.zip`` (label maps), put both in one directory (zipped or
extracted) and pass it once; the first run pairs photo (A) with colour label map (B) at
256x256 into the tfds data_dir (an already combined A|B ``cityscapes/`` folder or
``cityscapes.tar.gz`` works too)::

  python -m p2p_jax.main --config=configs/cityscapes.py --workdir=/tmp/cityscapes \\
      --config.data.manual_dir=/path/to/cityscapes_zips

Expect ``Prepared p2p_paired/cityscapes ...: train 2975, val 500 pairs``, then 595,000
steps (200 epochs; lr constant to step 297,500, then decaying linearly to 0). The paper
reports FCN-scores on val for L1+cGAN of 0.66 per-pixel accuracy, 0.23 per-class accuracy,
0.17 class IoU (real photos: 0.80 / 0.26 / 0.21). See
docs/datasets.md.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper  # noqa: E402


def get_config():
  c = paper.get_config()
  c.data.dataset = 'cityscapes'
  c.data.direction = 'BtoA'  # A = photo, B = label map: labels -> photo.
  c.data.eval_split = 'val'
  return c
