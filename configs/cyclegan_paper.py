"""CycleGAN's 256x256 setup (Zhu et al. 2017, Sec. 4 and Appendix 7), shared by the
CycleGAN dataset configs.

ResNet generator with 9 residual blocks and 64 filters (``resnet_9blocks``), 70x70
PatchGAN with instance norm, LSGAN, cycle lambda 10 both ways, identity 0.5 * lambda,
image pools of 50, Adam(2e-4, 0.5, 0.999), batch 1, resize to 286 then random 256 crop
and mirror (A and B drawn independently), 100 epochs at the initial lr and 100 of
linear decay (an epoch is max(|A|, |B|) images). Dataset configs import this and set the
dataset.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cyclegan_default  # noqa: E402


def get_config():
  c = cyclegan_default.get_config()
  c.image_size = 256
  c.checkpoint_every_steps = 10_000
  c.log_every_steps = 100
  c.sample_every_steps = 5000
  c.data.direction = 'AtoB'
  c.data.unpaired_halves = False
  c.data.preprocess = 'resize_and_crop'
  c.data.load_size = 286
  c.data.no_flip = False
  c.model.generator = 'resnet_9blocks'  # 'resnet_6blocks' for 128 px.
  c.model.ngf = 64
  c.model.ndf = 64
  c.num_train_steps = '200ep'  # Paper: 200 epochs.
  c.optim.lr_constant_epochs = 100  # Reference --n_epochs 100,
  c.optim.lr_decay_epochs = 100  # then --n_epochs_decay 100.
  return c
