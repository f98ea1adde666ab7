"""Optional PyTorch pix2pix (networks + one training step), for parity and speed comparisons.

Written from the description of the reference implementation
(junyanz/pytorch-CycleGAN-and-pix2pix: ``UnetGenerator``, ``NLayerDiscriminator``,
``Pix2PixModel.optimize_parameters``), not copied from it. PyTorch is imported lazily:
importing this module does not need torch, and nothing in training uses it.

Reference rules reproduced here:

* U-Net: recursive skip blocks; each level is ``LeakyReLU(0.2) -> Conv(4, 2, 1) -> norm``
  down and ``ReLU -> ConvTranspose(4, 2, 1) -> norm`` up, output concatenated with the
  level's input (``[input, output]`` along channels). The outermost level has no
  activation/norm before its down conv and ends with ``Tanh`` (its up conv has a bias); the
  innermost level has no norm on its down path and its up conv sees ``inner_nc`` (not 2x)
  channels. Dropout(0.5) after the up path of the ``num_downs - 5`` middle ``ngf*8``
  levels when ``use_dropout``.
* Conv biases: only with instance norm (``use_bias = norm is InstanceNorm2d``), except the
  outermost up conv of G and the first and last convs of D, which always have one. As in
  the reference, ``norm='none'`` therefore gives bias-free convs too.
* Init: conv weights ~ N(0, 0.02), biases 0; BatchNorm weight ~ N(1, 0.02), bias 0.
  (The ``torch.manual_seed`` in effect decides the draw.)
* Discriminators: ``NLayerDiscriminator`` (70x70 PatchGAN for n_layers=3) and
  ``PixelDiscriminator`` (1x1), each with its first conv biased and no norm after it.
* State-dict keys are the reference's (the same module attributes and Sequential
  positions), so ``torch.save(net.state_dict())`` of these networks looks like a reference
  checkpoint (``latest_net_G.pth``) and ``p2p_jax.convert_torch`` reads both.
* Step: D update on ``0.5 * (BCE(D([A, B]), 1) + BCE(D([A, G(A).detach()]), 0))``, then
  G update on ``BCE(D([A, G(A)]), 1) + lambda_l1 * L1(G(A), B)`` (D frozen), with one
  forward of G shared by both, Adam(lr, betas) for each network. Tensors are NCHW.

Parameter counts with the paper settings: U-Net-256 (``num_downs=8, ngf=64``, 3 -> 3,
batch norm) 54,413,955; 70x70 PatchGAN (``n_layers=3, ndf=64``, 6 input channels, batch
norm) 2,768,705.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

from p2p_jax import convert_torch


def _torch():
  import torch  # pylint: disable=import-outside-toplevel
  return torch


def _norm_layer(norm: str):
  """(constructor of the norm layer for c channels, conv use_bias): the reference's
  ``get_norm_layer`` and its ``use_bias = norm is InstanceNorm2d`` rule."""
  nn = _torch().nn
  if norm == 'batch':
    return lambda c: nn.BatchNorm2d(c, affine=True, track_running_stats=True), False
  if norm == 'instance':
    return lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False), True
  if norm == 'none':
    return lambda c: nn.Identity(), False  # Reference quirk: no bias without a norm either.
  raise ValueError(f'Unknown norm {norm!r}; choose batch, instance or none.')


def init_weights(net, gain: float = 0.02):
  """Reference 'normal' init: conv weights N(0, gain), biases 0; BatchNorm weight N(1, gain)."""
  nn = _torch().nn

  def init(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
      nn.init.normal_(m.weight, 0.0, gain)
      if m.bias is not None:
        nn.init.constant_(m.bias, 0.0)
    elif isinstance(m, nn.BatchNorm2d):
      nn.init.normal_(m.weight, 1.0, gain)
      nn.init.constant_(m.bias, 0.0)

  net.apply(init)
  return net


_CLASSES: Dict[str, Any] = {}


def _classes() -> Dict[str, Any]:
  """The torch.nn.Module classes, defined on first use (so this module imports without torch).

  Attribute names and Sequential positions follow the reference, so ``state_dict()`` keys
  are the reference's (``model.model.1.model.2.running_mean``, ...).
  """
  if _CLASSES:
    return _CLASSES
  torch = _torch()
  nn = torch.nn

  class UnetSkipBlock(nn.Module):
    """One U-Net level: ``x -> [x, up(sub(down(x)))]`` (the outermost returns the up path)."""

    def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, *, outermost=False,
                 innermost=False, norm='batch', use_dropout=False):
      super().__init__()
      make_norm, use_bias = _norm_layer(norm)
      input_nc = outer_nc if input_nc is None else input_nc
      self.outermost = outermost
      down = [nn.LeakyReLU(0.2, True),
              nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)]
      if outermost:  # No activation before, no norm after; the up conv has a bias, then tanh.
        up = [nn.ReLU(True), nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4,
                                                stride=2, padding=1), nn.Tanh()]
        layers = down[1:] + [submodule] + up
      elif innermost:  # No norm on the down path; the up conv sees inner_nc channels.
        up = [nn.ReLU(True), nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2,
                                                padding=1, bias=use_bias), make_norm(outer_nc)]
        layers = down + up
      else:
        up = [nn.ReLU(True), nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4,
                                                stride=2, padding=1, bias=use_bias),
              make_norm(outer_nc)]
        layers = down + [make_norm(inner_nc), submodule] + up
        if use_dropout:
          layers.append(nn.Dropout(0.5))
      self.model = nn.Sequential(*layers)

    def forward(self, x):
      if self.outermost:
        return self.model(x)
      return torch.cat([x, self.model(x)], 1)

  class UnetGen(nn.Module):
    """Reference ``UnetGenerator``: nested skip blocks, innermost first."""

    def __init__(self, input_nc, output_nc, num_downs, ngf=64, norm='batch', use_dropout=False):
      super().__init__()
      kw = dict(norm=norm)
      block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, **kw)
      for _ in range(num_downs - 5):  # Dropout here: one level out from the paper's CD blocks.
        block = UnetSkipBlock(ngf * 8, ngf * 8, None, block, use_dropout=use_dropout, **kw)
      block = UnetSkipBlock(ngf * 4, ngf * 8, None, block, **kw)
      block = UnetSkipBlock(ngf * 2, ngf * 4, None, block, **kw)
      block = UnetSkipBlock(ngf, ngf * 2, None, block, **kw)
      self.model = UnetSkipBlock(output_nc, ngf, input_nc, block, outermost=True, **kw)

    def forward(self, x):
      return self.model(x)

  class NLayerDisc(nn.Module):
    """Reference ``NLayerDiscriminator`` (PatchGAN): ``self.model`` is one Sequential."""

    def __init__(self, input_nc, ndf=64, n_layers=3, norm='batch'):
      super().__init__()
      make_norm, use_bias = _norm_layer(norm)
      layers: List[Any] = [nn.Conv2d(input_nc, ndf, kernel_size=4, stride=2, padding=1),
                           nn.LeakyReLU(0.2, True)]
      mult = 1
      for n in range(1, n_layers):
        prev, mult = mult, min(2 ** n, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=2, padding=1,
                             bias=use_bias),
                   make_norm(ndf * mult), nn.LeakyReLU(0.2, True)]
      prev, mult = mult, min(2 ** n_layers, 8)
      layers += [nn.Conv2d(ndf * prev, ndf * mult, kernel_size=4, stride=1, padding=1,
                           bias=use_bias),
                 make_norm(ndf * mult), nn.LeakyReLU(0.2, True),
                 nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1)]
      self.model = nn.Sequential(*layers)

    def forward(self, x):
      return self.model(x)

  class PixelDisc(nn.Module):
    """Reference ``PixelDiscriminator`` (1x1 PixelGAN): ``self.net`` is one Sequential."""

    def __init__(self, input_nc, ndf=64, norm='batch'):
      super().__init__()
      make_norm, use_bias = _norm_layer(norm)
      self.net = nn.Sequential(
          nn.Conv2d(input_nc, ndf, kernel_size=1, stride=1, padding=0),
          nn.LeakyReLU(0.2, True),
          nn.Conv2d(ndf, ndf * 2, kernel_size=1, stride=1, padding=0, bias=use_bias),
          make_norm(ndf * 2), nn.LeakyReLU(0.2, True),
          nn.Conv2d(ndf * 2, 1, kernel_size=1, stride=1, padding=0, bias=use_bias))

    def forward(self, x):
      return self.net(x)

  _CLASSES.update(UnetSkipBlock=UnetSkipBlock, UnetGenerator=UnetGen,
                  NLayerDiscriminator=NLayerDisc, PixelDiscriminator=PixelDisc)
  return _CLASSES


def UnetGenerator(input_nc: int, output_nc: int, num_downs: int, ngf: int = 64,  # pylint: disable=invalid-name
                  norm: str = 'batch', use_dropout: bool = True, init_gain: float = 0.02):
  """U-Net generator (reference ``UnetGenerator``); input H, W divisible by 2**num_downs.

  ``use_dropout``: Dropout(0.5) after the ``num_downs - 5`` middle 8*ngf levels (the
  reference's placement; p2p_jax's ``model.dropout_placement='reference'``).
  """
  if num_downs < 5:
    raise ValueError(f'num_downs must be >= 5, got {num_downs}.')
  net = _classes()['UnetGenerator'](input_nc, output_nc, num_downs, ngf, norm, use_dropout)
  return init_weights(net, init_gain)


UNET_DEPTHS = {'unet_128': 7, 'unet_256': 8}  # The reference's --netG names for the U-Net.


def define_G(netG: str, input_nc: int = 3, output_nc: int = 3, ngf: int = 64,  # pylint: disable=invalid-name
             norm: str = 'batch', use_dropout: bool = True, init_gain: float = 0.02):
  """A generator by the reference's ``--netG`` name (``unet_128``, ``unet_256``)."""
  if netG not in UNET_DEPTHS:
    raise ValueError(f'Unknown netG {netG!r}; choose from {sorted(UNET_DEPTHS)}.')
  return UnetGenerator(input_nc, output_nc, UNET_DEPTHS[netG], ngf, norm, use_dropout,
                       init_gain)


def NLayerDiscriminator(input_nc: int, ndf: int = 64, n_layers: int = 3,  # pylint: disable=invalid-name
                        norm: str = 'batch', init_gain: float = 0.02):
  """PatchGAN discriminator (reference ``NLayerDiscriminator``); 70x70 for n_layers=3."""
  net = _classes()['NLayerDiscriminator'](input_nc, ndf, n_layers, norm)
  return init_weights(net, init_gain)


def PixelDiscriminator(input_nc: int, ndf: int = 64, norm: str = 'batch',  # pylint: disable=invalid-name
                       init_gain: float = 0.02):
  """1x1 PixelGAN discriminator (reference ``PixelDiscriminator``)."""
  return init_weights(_classes()['PixelDiscriminator'](input_nc, ndf, norm), init_gain)


def gradient_penalty(netD, real_data, fake_data, alpha, constant: float = 1.0,  # pylint: disable=invalid-name
                     lambda_gp: float = 10.0):
  """The reference's ``cal_gradient_penalty`` (type 'mixed') with the mixing weights given.

  ``alpha`` [B] replaces the reference's ``torch.rand(B, 1)`` draw, so a test can feed the
  JAX side the same numbers. Returns ``lambda_gp * mean((||grad||_2 - constant)^2)``.
  """
  torch = _torch()
  b = real_data.shape[0]
  a = alpha.reshape(b, 1).expand(b, real_data.nelement() // b).contiguous().view(
      *real_data.shape)
  x_hat = (a * real_data + (1 - a) * fake_data).requires_grad_(True)
  out = netD(x_hat)
  (grads,) = torch.autograd.grad(outputs=out, inputs=x_hat, grad_outputs=torch.ones_like(out),
                                 create_graph=True, retain_graph=True)
  grads = grads.view(b, -1)
  return (((grads + 1e-16).norm(2, dim=1) - constant) ** 2).mean() * lambda_gp


def count_params(net) -> int:
  """Number of trainable parameters (BatchNorm running statistics excluded)."""
  return sum(p.numel() for p in net.parameters() if p.requires_grad)


def make_torch_step(G, D, lambda_l1: float = 100.0, lr: float = 2e-4,  # pylint: disable=invalid-name
                    betas: Tuple[float, float] = (0.5, 0.999)) -> Callable[..., Dict[str, float]]:
  """Returns ``step(real_a, real_b) -> losses``: one pix2pix D update then one G update.

  The reference's ``optimize_parameters`` order: G forward once; D update on
  ``(real, fake.detach())``; G update against the updated D. ``step.optimizers`` holds the
  two ``torch.optim.Adam`` (``'G'``, ``'D'``).

  ``real_a``/``real_b`` are NCHW float tensors in [-1, 1]. The networks are put in train
  mode (BatchNorm batch statistics, dropout on), as in the reference's training loop.
  """
  torch = _torch()
  bce = torch.nn.BCEWithLogitsLoss()
  l1 = torch.nn.L1Loss()
  opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
  opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
  G.train()
  D.train()

  def gan_loss(pred, is_real: bool):
    return bce(pred, torch.full_like(pred, 1.0 if is_real else 0.0))

  def set_requires_grad(net, flag: bool):
    for p in net.parameters():
      p.requires_grad_(flag)

  def step(real_a, real_b) -> Dict[str, float]:
    fake_b = G(real_a)
    # D: real pairs -> 1, fake pairs (G detached) -> 0.
    set_requires_grad(D, True)
    opt_d.zero_grad(set_to_none=True)
    loss_d_fake = gan_loss(D(torch.cat([real_a, fake_b.detach()], 1)), False)
    loss_d_real = gan_loss(D(torch.cat([real_a, real_b], 1)), True)
    loss_d = (loss_d_fake + loss_d_real) * 0.5
    loss_d.backward()
    opt_d.step()
    # G: fool the (updated, frozen) D and stay close to the target in L1.
    set_requires_grad(D, False)
    opt_g.zero_grad(set_to_none=True)
    loss_g_gan = gan_loss(D(torch.cat([real_a, fake_b], 1)), True)
    loss_g_l1 = l1(fake_b, real_b) * lambda_l1
    loss_g = loss_g_gan + loss_g_l1
    loss_g.backward()
    opt_g.step()
    losses = {'loss_D': loss_d, 'loss_D_real': loss_d_real, 'loss_D_fake': loss_d_fake,
              'loss_G': loss_g, 'loss_G_GAN': loss_g_gan, 'loss_G_L1': loss_g_l1}
    return {k: v.detach().item() for k, v in losses.items()}

  step.optimizers = {'G': opt_g, 'D': opt_d}  # Their .state holds exp_avg / exp_avg_sq.
  return step


def nhwc_to_torch(x):
  """A NHWC array (numpy or JAX) -> a contiguous float32 NCHW torch tensor."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  torch = _torch()
  return torch.from_numpy(np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 3, 1, 2)))


def time_torch_step(step: Callable[..., Any], batch: Sequence[Any], steps: int,
                    warmup: int = 1) -> List[float]:
  """Runs ``step(*batch)`` ``warmup`` times untimed, then ``steps`` times; per-step seconds.

  ``batch`` is ``(real_a, real_b)`` (NCHW tensors; see ``nhwc_to_torch``). Leaves
  ``torch.set_num_threads`` at its default. CPU torch is synchronous, and ``step``
  returns Python floats, so each timing covers the whole step.
  """
  for _ in range(warmup):
    step(*batch)
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    step(*batch)
    times.append(time.perf_counter() - t0)
  return times


# --- CycleGAN -------------------------------------------------------------------------------
# Written from the description of the reference's ``ResnetGenerator``, ``ResnetBlock`` and
# ``CycleGANModel.optimize_parameters`` (networks.py, cycle_gan_model.py). Parameter counts
# (3 -> 3, instance norm): 9 blocks 11,378,179; 6 blocks 7,837,699; the 70x70 PatchGAN
# above with ``norm='instance'`` on 3 channels 2,764,737.


def ResnetGenerator(input_nc: int, output_nc: int, ngf: int = 64, n_blocks: int = 9,  # pylint: disable=invalid-name
                    norm: str = 'instance', init_gain: float = 0.02):
  """Reference ``ResnetGenerator`` (no dropout): c7s1-ngf, d2ngf, d4ngf, n x R4ngf, u2ngf,
  ungf, c7s1-output_nc, tanh; reflection padding; ``x + block(x)`` residuals."""
  nn = _torch().nn
  make_norm, use_bias = _norm_layer(norm)

  class ResnetBlock(nn.Module):

    def __init__(self, dim: int):
      super().__init__()
      self.conv_block = nn.Sequential(
          nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
          make_norm(dim), nn.ReLU(True),
          nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
          make_norm(dim))

    def forward(self, x):
      return x + self.conv_block(x)

  layers: List[Any] = [nn.ReflectionPad2d(3),
                       nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
                       make_norm(ngf), nn.ReLU(True)]
  for i in range(2):
    mult = 2 ** i
    layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1,
                         bias=use_bias), make_norm(ngf * mult * 2), nn.ReLU(True)]
  layers += [ResnetBlock(ngf * 4) for _ in range(n_blocks)]
  for i in range(2):
    mult = 2 ** (2 - i)
    layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=2,
                                  padding=1, output_padding=1, bias=use_bias),
               make_norm(ngf * mult // 2), nn.ReLU(True)]
  layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0),
             nn.Tanh()]

  class ResnetGen(nn.Module):  # The reference's module: state-dict keys 'model.<i>...'.

    def __init__(self):
      super().__init__()
      self.model = nn.Sequential(*layers)

    def forward(self, x):
      return self.model(x)

  return init_weights(ResnetGen(), init_gain)


def resnet_flax_paths(n_blocks: int) -> List[str]:
  """The convolutions of ``p2p_jax.models.resnet.ResnetGenerator`` in torch module order
  (from ``p2p_jax.convert_torch.resnet_layout``, the one torch -> Flax name mapping)."""
  return [layer.flax for layer in convert_torch.resnet_layout(n_blocks) if layer.kind != 'norm']


def patchgan_flax_paths(n_layers: int) -> List[str]:
  """The convolutions of ``p2p_jax.models.NLayerDiscriminator`` in torch module order."""
  return [f'Conv_{i}' for i in range(n_layers + 2)]


def flax_params_from_torch(net, params, paths: Sequence[str]):
  """``params`` (a Flax parameter tree of the same architecture, arrays or shapes) with the
  weights of the torch ``net``'s convolutions: the i-th torch conv goes to ``paths[i]``
  ('a/b' = ``params['a']['b']``). Conv2d weights [out, in, kh, kw] and ConvTranspose2d
  weights [in, out, kh, kw] become ``[kh, kw, in, out]``. Convolutions only: networks with
  BatchNorm are refused."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  nn = _torch().nn
  if any(isinstance(m, nn.BatchNorm2d) for m in net.modules()):
    raise ValueError('flax_params_from_torch copies convolutions only (no BatchNorm).')
  convs = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
  if len(convs) != len(paths):
    raise ValueError(f'{len(convs)} torch convolutions for {len(paths)} Flax paths')

  def copy(tree):
    return {k: copy(v) for k, v in tree.items()} if isinstance(tree, dict) else tree

  out = copy(params)
  for m, path in zip(convs, paths):
    leaf = out
    for key in path.split('/'):
      leaf = leaf[key]
    w = m.weight.detach().cpu().numpy()
    w = w.transpose(2, 3, 0, 1) if isinstance(m, nn.ConvTranspose2d) else w.transpose(2, 3, 1, 0)
    if w.shape != tuple(leaf['kernel'].shape):
      raise ValueError(f'{path}: kernel shape {tuple(leaf["kernel"].shape)} vs torch {w.shape}')
    if ('bias' in leaf) != (m.bias is not None):
      raise ValueError(f'{path}: bias in one network and not the other')
    leaf['kernel'] = np.array(w, copy=True)  # Copies: torch's optimiser updates in place.
    if m.bias is not None:
      leaf['bias'] = np.array(m.bias.detach().cpu().numpy(), copy=True)
  return out


class ImagePool:
  """Reference ``ImagePool``: fill first; then per image with p 0.5 return a random stored
  image and store the new one in its slot, else return the new one (Python's ``random``)."""

  def __init__(self, pool_size: int = 50):
    self.pool_size = pool_size
    self.images: List[Any] = []

  def query(self, images):
    import random  # pylint: disable=import-outside-toplevel
    torch = _torch()
    if self.pool_size == 0:
      return images
    out = []
    for image in images:
      image = image.detach().unsqueeze(0)
      if len(self.images) < self.pool_size:
        self.images.append(image)
        out.append(image)
      elif random.uniform(0, 1) > 0.5:
        i = random.randint(0, self.pool_size - 1)
        out.append(self.images[i].clone())
        self.images[i] = image
      else:
        out.append(image)
    return torch.cat(out, 0)


def make_torch_cyclegan_step(G_A, G_B, D_A, D_B, lambda_a: float = 10.0,  # pylint: disable=invalid-name
                             lambda_b: float = 10.0, lambda_identity: float = 0.5,
                             lr: float = 2e-4, betas: Tuple[float, float] = (0.5, 0.999),
                             pool_size: int = 50) -> Callable[..., Dict[str, float]]:
  """Returns ``step(real_a, real_b) -> losses``: one reference CycleGAN iteration.

  Forward both cycles; one Adam step over both generators on LSGAN + cycle L1 + identity
  L1; then one Adam step over both discriminators, D_A on (real B, pool(fake B)) and D_B
  on (real A, pool(fake A)), each loss ``0.5 * (MSE(D(real), 1) + MSE(D(fake), 0))``, the
  fakes being those computed before G's update. Tensors are NCHW.
  """
  import itertools  # pylint: disable=import-outside-toplevel
  torch = _torch()
  mse = torch.nn.MSELoss()
  l1 = torch.nn.L1Loss()
  opt_g = torch.optim.Adam(itertools.chain(G_A.parameters(), G_B.parameters()), lr=lr,
                           betas=betas)
  opt_d = torch.optim.Adam(itertools.chain(D_A.parameters(), D_B.parameters()), lr=lr,
                           betas=betas)
  pool_a, pool_b = ImagePool(pool_size), ImagePool(pool_size)
  for net in (G_A, G_B, D_A, D_B):
    net.train()

  def gan_loss(pred, is_real: bool):
    return mse(pred, torch.full_like(pred, 1.0 if is_real else 0.0))

  def set_requires_grad(nets, flag: bool):
    for net in nets:
      for p in net.parameters():
        p.requires_grad_(flag)

  def d_basic(net, real, fake):
    loss_real = gan_loss(net(real), True)
    loss_fake = gan_loss(net(fake.detach()), False)
    loss = (loss_real + loss_fake) * 0.5
    loss.backward()
    return loss

  def step(real_a, real_b) -> Dict[str, float]:
    fake_b = G_A(real_a)
    rec_a = G_B(fake_b)
    fake_a = G_B(real_b)
    rec_b = G_A(fake_a)
    set_requires_grad([D_A, D_B], False)
    opt_g.zero_grad(set_to_none=True)
    if lambda_identity > 0:
      loss_idt_a = l1(G_A(real_b), real_b) * lambda_b * lambda_identity
      loss_idt_b = l1(G_B(real_a), real_a) * lambda_a * lambda_identity
    else:
      loss_idt_a = loss_idt_b = torch.zeros(())
    loss_g_a = gan_loss(D_A(fake_b), True)
    loss_g_b = gan_loss(D_B(fake_a), True)
    loss_cycle_a = l1(rec_a, real_a) * lambda_a
    loss_cycle_b = l1(rec_b, real_b) * lambda_b
    loss_g = loss_g_a + loss_g_b + loss_cycle_a + loss_cycle_b + loss_idt_a + loss_idt_b
    loss_g.backward()
    opt_g.step()
    set_requires_grad([D_A, D_B], True)
    opt_d.zero_grad(set_to_none=True)
    loss_d_a = d_basic(D_A, real_b, pool_b.query(fake_b))
    loss_d_b = d_basic(D_B, real_a, pool_a.query(fake_a))
    opt_d.step()
    losses = {'D_A': loss_d_a, 'G_A': loss_g_a, 'cycle_A': loss_cycle_a, 'idt_A': loss_idt_a,
              'D_B': loss_d_b, 'G_B': loss_g_b, 'cycle_B': loss_cycle_b, 'idt_B': loss_idt_b,
              'G': loss_g}
    return {k: float(v.detach().item()) for k, v in losses.items()}

  return step
