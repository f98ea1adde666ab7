"""pix2pix on maps, aerial photo -> Google map (paper Sec. 4, Appendix 6.2): 1096 training
pairs, 200 epochs (219,200 steps), batch 1, jitter (286 -> 256) and mirroring; val is the
test set. For map -> aerial photo add ``--config.data.direction=BtoA``.

Data: A = aerial photo, B = map. The first run builds ``p2p_paired/maps`` from the
download (maps.tar.gz, 1096 train / 1098 val pairs at 600x600 per side) or offline from
``--config.data.manual_dir`` (the .tar.gz or its extracted folder); later runs need
neither::

  python -m p2p_jax.main --config=configs/maps.py --workdir=/tmp/maps \\
      --config.data.manual_dir=../shared/data/maps

Expect ``Prepared p2p_paired/maps ...: train 1096, val 878 pairs`` with the copy in
../shared/data (1098 val with the full release), then 219,200 steps (200 epochs; lr
constant to step 109,600, then decaying linearly to 0). Samples under
WORKDIR/samples/ show roads, parks and water in map colours following the aerial layout;
the paper's AMT study found 6.1% of generated maps taken for real at 256x256.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper  # noqa: E402


def get_config():
  c = paper.get_config()
  c.data.dataset = 'maps'
  c.data.direction = 'AtoB'  # A = aerial photo, B = map: aerial -> map.
  c.data.eval_split = 'val'
  return c
