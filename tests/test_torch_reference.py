"""The optional PyTorch reference networks and step (skipped without torch)."""

import subprocess
import sys

import numpy as np
import pytest

from p2p_jax import torch_reference as tr


def test_module_imports_without_torch():
  code = 'import sys, p2p_jax.torch_reference; assert "torch" not in sys.modules'
  subprocess.run([sys.executable, '-c', code], check=True)


@pytest.fixture(name='torch')
def _torch_fixture():
  return pytest.importorskip('torch')


def test_paper_parameter_counts(torch):
  assert tr.count_params(tr.UnetGenerator(3, 3, 8, 64)) == 54_413_955
  assert tr.count_params(tr.NLayerDiscriminator(6, 64, 3)) == 2_768_705


def test_bias_rules_and_init(torch):
  torch.manual_seed(0)
  g = tr.UnetGenerator(3, 3, 5, 4)
  convs = [m for m in g.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
  with_bias = [m for m in convs if m.bias is not None]
  # Batch norm: only the outermost up conv (ConvTranspose2d(2*ngf -> output_nc)) has a bias.
  assert len(with_bias) == 1 and isinstance(with_bias[0], torch.nn.ConvTranspose2d)
  assert with_bias[0].out_channels == 3 and with_bias[0].in_channels == 8
  assert float(with_bias[0].bias.detach().abs().max()) == 0.0
  # Innermost level: no norm on the down path -> 5 down convs, 4 norms there + 5 up norms - 1.
  norms = [m for m in g.modules() if isinstance(m, torch.nn.BatchNorm2d)]
  assert len(norms) == (5 - 2) + (5 - 1)
  d = tr.NLayerDiscriminator(6, 8, 3)
  d_convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
  assert [m.bias is not None for m in d_convs] == [True, False, False, False, True]
  assert [m.stride[0] for m in d_convs] == [2, 2, 2, 1, 1]
  # Instance norm: every conv has a bias.
  gi = tr.UnetGenerator(3, 3, 5, 4, norm='instance')
  assert all(m.bias is not None for m in gi.modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)))
  big = tr.UnetGenerator(3, 3, 8, 64)
  w = torch.cat([m.weight.detach().flatten() for m in big.modules()
                 if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))])
  assert abs(float(w.std()) - 0.02) < 1e-3 and abs(float(w.mean())) < 1e-3


def test_shapes_and_dropout(torch):
  torch.manual_seed(0)
  g = tr.UnetGenerator(3, 2, 6, 4, use_dropout=True)
  assert sum(isinstance(m, torch.nn.Dropout) for m in g.modules()) == 1  # num_downs - 5
  x = torch.rand(2, 3, 64, 64) * 2 - 1
  y = g(x)
  assert y.shape == (2, 2, 64, 64) and float(y.detach().abs().max()) <= 1.0
  d = tr.NLayerDiscriminator(5, 4, 3)
  assert d(torch.cat([x, y], 1)).shape == (2, 1, 6, 6)  # 64 -> 32 -> 16 -> 8 -> 7 -> 6


def test_step_trains_and_timer(torch):
  torch.manual_seed(0)
  g = tr.UnetGenerator(3, 3, 5, 4)
  d = tr.NLayerDiscriminator(6, 4, 3)
  step = tr.make_torch_step(g, d)
  rng = np.random.default_rng(0)
  a = tr.nhwc_to_torch(rng.uniform(-1, 1, (2, 32, 32, 3)))
  b = tr.nhwc_to_torch(rng.uniform(-1, 1, (2, 32, 32, 3)))
  assert a.shape == (2, 3, 32, 32) and a.dtype == torch.float32
  before = [p.detach().clone() for p in list(g.parameters()) + list(d.parameters())]
  losses = step(a, b)
  assert set(losses) == {'loss_D', 'loss_D_real', 'loss_D_fake', 'loss_G', 'loss_G_GAN',
                         'loss_G_L1'}
  assert abs(losses['loss_D'] - 0.5 * (losses['loss_D_real'] + losses['loss_D_fake'])) < 1e-5
  assert abs(losses['loss_G'] - losses['loss_G_GAN'] - losses['loss_G_L1']) < 1e-4
  after = list(g.parameters()) + list(d.parameters())
  assert all(not torch.equal(p0, p1.detach()) for p0, p1 in zip(before, after))
  assert not any(p.requires_grad for p in d.parameters())  # D frozen after the G update.
  l1_start = losses['loss_G_L1']
  for _ in range(20):
    losses = step(a, b)
  assert losses['loss_G_L1'] < l1_start  # Fits the single batch.
  times = tr.time_torch_step(step, (a, b), steps=2, warmup=1)
  assert len(times) == 2 and all(t > 0 for t in times)


def test_reference_layout_keys_and_dropout_levels(torch):
  from p2p_jax.models.unet import dropout_levels
  g = tr.define_G('unet_256', 3, 3, ngf=2)
  keys = set(g.state_dict())
  # The reference's names: UnetGenerator.model -> block.model (Sequential) -> submodule at 1,
  # then at 3 one level further in; BatchNorm2d at 2 (down) and 6 (up) of a middle level.
  assert {'model.model.0.weight', 'model.model.3.weight', 'model.model.3.bias',
          'model.model.1.model.2.running_mean', 'model.model.1.model.6.weight'} <= keys
  for n in range(5, 9):
    net = tr.UnetGenerator(3, 3, n, 2, use_dropout=True)
    # Depth of each Dropout: its block's nesting level (outermost 0) = the Flax level up{i}.
    levels = {name.count('.model.3') + 1 for name, m in net.named_modules()
              if isinstance(m, torch.nn.Dropout)}
    assert levels == dropout_levels(n, 'reference'), (n, levels)


def test_pixel_discriminator(torch):
  d = tr.PixelDiscriminator(6, 64)
  # 1x1 convs: 6*64+64, 64*128 (no bias before BatchNorm), BN 2*128, 128*1 (no bias).
  assert tr.count_params(d) == 6 * 64 + 64 + 64 * 128 + 2 * 128 + 128
  assert d(torch.zeros(2, 6, 5, 5)).shape == (2, 1, 5, 5)
  di = tr.PixelDiscriminator(6, 4, norm='instance')
  assert all(m.bias is not None for m in di.modules() if isinstance(m, torch.nn.Conv2d))
