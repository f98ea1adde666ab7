"""pix2pix on your own paired images: a folder, no loader to write.

  python -m p2p_jax.main --config=configs/custom.py --workdir=/tmp/mine \\
      --config.data.data_path=/path/to/DIR

DIR in any of these layouts (details and error messages: docs/datasets.md)::

  DIR/train/*.jpg                     aligned pairs: left half A, right half B
  DIR/train/A/x.png + DIR/train/B/x.png   two folders, matched by file name (any extension)
  DIR/A/train/x.png + DIR/B/train/x.png   the reference implementation's A/B layout

with ``test/`` (or ``val/``: add ``--config.data.eval_split=val``) beside ``train/``. Any
size, non-square too; PNG, JPEG, TIFF, BMP; 8 or 16 bit; 1 or 3 channels per side (the
generator's input and output channels follow the data and the direction). Unreadable
images are skipped and named in the log (``--config.data.strict=True`` stops instead).

Defaults are the paper's 256x256 setup (U-Net-256, 70x70 PatchGAN, jitter 286 -> 256,
mirroring, batch 1, 200 epochs: 200 x (training pairs) steps, lr constant for 100 epochs
then decaying linearly to 0). Common changes:
  --config.data.direction=BtoA          translate B -> A
  --config.data.no_flip=True            if left/right matters (text, maps with labels)
  --config.data.preprocess=crop         random 256 crops of full-resolution images
  --config.data.preprocess=scale_width_and_crop --config.data.load_size=512
                                        keep the aspect ratio, then crop
  --config.image_size=128 --config.data.load_size=143 --config.model.num_downs=7
                                        smaller and faster (num_downs: 8 for 256, 7 for 128)
  --config.num_train_steps=1ep          a quick end-to-end check (or a step count: =500)

Expect the log to name the folder, the pairs found per split, the channel counts (e.g.
``1 -> 3`` for grayscale A and RGB B) and any skipped files; samples under
WORKDIR/samples/ show input, output and target side by side.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import paper  # noqa: E402


def get_config():
  c = paper.get_config()
  c.checkpoint_every_steps = 5000
  c.sample_every_steps = 2000
  c.data.dataset = 'custom'
  c.data.direction = 'AtoB'  # Input = A, target = B.
  return c
