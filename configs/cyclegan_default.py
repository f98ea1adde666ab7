"""CycleGAN on the embedded procedural facades, unpaired, sized for a laptop CPU.

The 400 procedural pairs are split into disjoint halves: label maps from one half, photos
from the other, so no photo's own label map is ever seen. A = label map, B = photo
(``data.direction='BtoA'`` of the paired set): G_A turns labels into facades, G_B facades
into labels. ResNet generator with 6 blocks and 16 filters (about 750 M multiply-adds per
64 px image at 32 filters, a quarter of that at 16, and one step runs six generator
passes and their gradients), 70x70 PatchGAN with 32 filters and instance norm, 64 px
crops of 72 px images, batch 1, lr constant for 4 epochs of 200 steps then decaying over
4 more (1,600 steps; about 3.5 minutes on an idle 2-core CPU)::

  python -m p2p_jax.main --config=configs/cyclegan_default.py --workdir=/tmp/cyclegan_default

One departure from the reference's defaults: no identity loss (``loss.lambda_identity=0``;
the reference's default is 0.5, and the paper introduces the term for painting -> photo,
Sec. 5.2). Label maps and photos share no colours, so the term pulls each generator
towards copying its input's colours: with it, this short run's labels -> photo FCN pixel
accuracy was 0.33, below an untrained generator's 0.36; without it, 0.52. The dataset
configs keep 0.5.

Paper settings (256 px, 64 filters, 9 blocks, 100 + 100 epochs) are in the dataset configs
(``configs/cyclegan_horse2zebra.py`` etc.).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import default  # noqa: E402


def get_config():
  c = default.get_config()
  c.batch_size = 1  # Reference: batch 1 (instance norm).
  c.steps_per_dispatch = 1
  c.checkpoint_every_steps = 400
  c.log_every_steps = 50
  c.sample_every_steps = 400
  c.num_train_steps = '8ep'  # 8 epochs of max(|A|, |B|) = 200 steps: 1,600 steps.

  c.data.direction = 'BtoA'  # A = label map, B = photo (the paired set's B and A).
  c.data.unpaired_halves = True  # Labels from one half of the pairs, photos from the other.

  c.model.name = 'cyclegan'  # 'pix2pix' or 'cyclegan'.
  c.model.generator = 'resnet_6blocks'  # 'resnet_<n>blocks' (paper: 9 at 256 px, 6 at 128).
  c.model.ngf = 16  # Generator filters in the first layer (paper 64).
  c.model.ndf = 32  # Discriminator filters in the first layer (paper 64).
  c.model.g_norm = 'instance'  # Instance norm without affine parameters (reference).
  c.model.d_norm = 'instance'
  c.model.dropout = 0.0  # CycleGAN's generators have no dropout.

  c.loss.gan_mode = 'lsgan'  # Least-squares GAN (paper Sec. 4).
  c.loss.lambda_a = 10.0  # Weight of the A -> B -> A cycle L1 (paper 10).
  c.loss.lambda_b = 10.0  # Weight of the B -> A -> B cycle L1 (paper 10).
  c.loss.lambda_identity = 0.0  # Identity L1 weight (reference 0.5); see the docstring.
  c.loss.pool_size = 50  # Past fakes D trains on, per direction (0 = newest only).

  c.optim.lr_constant_epochs = 4  # Epochs at the initial lr (paper 100).
  c.optim.lr_decay_epochs = 4  # Then linear decay per epoch towards 0 (paper 100).

  return c
