"""Numerical parity with the reference's PyTorch networks and training step.

The PyTorch side is ``p2p_jax.torch_reference`` (built layer for layer as the reference's
``networks.py``); weights go torch -> Flax through ``p2p_jax.convert_torch``. Outputs must
agree to float32 rounding in training mode (batch statistics) and eval mode (running
statistics), for the U-Net, the n-layer and the pixel discriminators, with batch, instance
and no norm, at two image sizes; one pix2pix train step must give the same losses, weights
and Adam moments.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_adam_params_close, tiny_config

torch = pytest.importorskip('torch', reason='parity tests compare against PyTorch (optional)')

from p2p_jax import convert_torch as ct  # noqa: E402
from p2p_jax import losses  # noqa: E402
from p2p_jax.errors import CheckpointError  # noqa: E402
from p2p_jax import torch_reference as tr  # noqa: E402
from p2p_jax.models.discriminators import NLayerDiscriminator, PixelDiscriminator  # noqa: E402
from p2p_jax.models.unet import UNetGenerator  # noqa: E402
from p2p_jax.pix2pix import create_train_state, make_networks, train_step  # noqa: E402

NORMS = ('batch', 'instance', 'none')


def perturb(net, seed=0):
  """Non-trivial biases and running statistics (init leaves them 0 / 0 / 1)."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in net.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.bias.uniform_(-0.2, 0.2, generator=g)
        m.running_mean.uniform_(-0.3, 0.3, generator=g)
        m.running_var.uniform_(0.5, 1.5, generator=g)
      elif isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and m.bias is not None:
        m.bias.uniform_(-0.1, 0.1, generator=g)
  return net


def images(n, size, channels, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, channels)).astype(np.float32)


def torch_out(net, x, train):
  net.train(train)
  with torch.no_grad():
    return net(tr.nhwc_to_torch(x)).numpy().transpose(0, 2, 3, 1)


def batch_norm_counts(net, x):
  """{BatchNorm2d module: elements per channel it normalises over (N*H*W)} for input x."""
  counts, hooks = {}, []
  for m in net.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
      hooks.append(m.register_forward_hook(
          lambda mod, inp, out: counts.__setitem__(mod, inp[0].numel() // inp[0].shape[1])))
  torch_out(net, x, train=False)
  for h in hooks:
    h.remove()
  return counts


def check_parity(tnet, jnet, layout, norm, x):
  """Copies tnet's weights into jnet; equal outputs (train + eval) and running statistics."""
  expected = jax.eval_shape(lambda: jnet.init(jax.random.key(0), jnp.asarray(x), train=False))
  v = ct.to_flax(tnet.state_dict(), layout, norm, expected)
  v = jax.tree.map(jnp.asarray, v)
  counts = batch_norm_counts(tnet, x)
  prefix = {m: k for k, m in tnet.named_modules()}
  y_eval = torch_out(tnet, x, train=False)
  np.testing.assert_allclose(np.asarray(jnet.apply(v, x, train=False)), y_eval,
                             rtol=1e-4, atol=1e-5)
  before = {k: (b.running_mean.clone(), b.running_var.clone()) for k, b in
            ((prefix[m], m) for m in counts)}
  y_train = torch_out(tnet, x, train=True)  # Updates tnet's running statistics.
  j_train, upd = jnet.apply(v, x, train=True, mutable=['batch_stats'])
  np.testing.assert_allclose(np.asarray(j_train), y_train, rtol=1e-4, atol=1e-5)
  assert np.abs(y_train - y_eval).max() > 1e-3 or norm != 'batch'  # The modes differ.
  if norm == 'batch':
    # Running means agree; running variances differ by design: PyTorch averages the
    # unbiased batch variance (n/(n-1)), Flax the biased one.
    new = ct.to_flax(tnet.state_dict(), layout, norm, expected)['batch_stats']
    by_flax = {layer.flax: layer.torch for layer in layout if layer.kind == 'norm'}
    mods = {prefix[m]: n for m, n in counts.items()}
    for name, stats in upd['batch_stats'].items():
      np.testing.assert_allclose(np.asarray(stats['mean']), new[name]['mean'], rtol=1e-4,
                                 atol=1e-6)
      n = mods[by_flax[name]]
      v0 = before[by_flax[name]][1].numpy()
      flax_var = np.asarray(stats['var'], np.float64)
      unbiased = flax_var + (flax_var - 0.9 * v0) / (n - 1)  # 0.1 * batch var * n / (n-1).
      np.testing.assert_allclose(unbiased, new[name]['var'], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('norm', NORMS)
@pytest.mark.parametrize('num_downs,size', [(5, 32), (5, 64), (6, 64)])
def test_unet_generator(norm, num_downs, size):
  torch.manual_seed(num_downs)
  tnet = perturb(tr.UnetGenerator(3, 2, num_downs, 4, norm=norm, use_dropout=False))
  jnet = UNetGenerator(output_channels=2, num_downs=num_downs, ngf=4, norm=norm,
                       dropout_rate=0.0)
  check_parity(tnet, jnet, ct.unet_layout(num_downs, norm), norm, images(2, size, 3))


@pytest.mark.parametrize('norm', NORMS)
@pytest.mark.parametrize('n_layers,size', [(3, 32), (3, 48), (2, 40)])
def test_n_layer_discriminator(norm, n_layers, size):
  torch.manual_seed(1)
  tnet = perturb(tr.NLayerDiscriminator(5, 4, n_layers, norm=norm))
  jnet = NLayerDiscriminator(ndf=4, n_layers=n_layers, norm=norm)
  check_parity(tnet, jnet, ct.nlayer_layout(n_layers), norm, images(2, size, 5))


@pytest.mark.parametrize('norm', NORMS)
@pytest.mark.parametrize('size', [8, 20])
def test_pixel_discriminator(norm, size):
  torch.manual_seed(2)
  tnet = perturb(tr.PixelDiscriminator(5, 4, norm=norm))
  jnet = PixelDiscriminator(ndf=4, norm=norm)
  check_parity(tnet, jnet, ct.pixel_layout(), norm, images(2, size, 5))


def test_conversion_names_the_first_mismatching_layer():
  tnet = tr.UnetGenerator(3, 3, 5, 4, use_dropout=False)
  jnet = UNetGenerator(output_channels=3, num_downs=5, ngf=8)  # Twice as wide.
  expected = jax.eval_shape(lambda: jnet.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                                              train=False))
  with pytest.raises(CheckpointError, match=r'model\.model\.0\.weight .*\(4, 4, 3, 8\)'):
    ct.to_flax(tnet.state_dict(), ct.unet_layout(5, 'batch'), 'batch', expected)
  inst = tr.UnetGenerator(3, 3, 5, 4, norm='instance', use_dropout=False)
  with pytest.raises(CheckpointError, match='bias'):  # Batch-norm model, biased convs.
    ct.to_flax(inst.state_dict(), ct.unet_layout(5, 'batch'), 'batch',
               jax.eval_shape(lambda: UNetGenerator(output_channels=3, num_downs=5, ngf=4).init(
                   jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)))


# ------------------------------------------------------------------------ WGAN-GP


def test_wgangp_terms_and_gradient_penalty_match_the_reference():
  torch.manual_seed(3)
  tnet = perturb(tr.NLayerDiscriminator(4, 4, 2, norm='instance'))
  jnet = NLayerDiscriminator(ndf=4, n_layers=2, norm='instance')
  real, fake = images(3, 24, 4, seed=1), images(3, 24, 4, seed=2)
  alpha = np.array([0.1, 0.5, 0.9], np.float32)
  expected = jax.eval_shape(lambda: jnet.init(jax.random.key(0), jnp.asarray(real),
                                              train=False))
  v = jax.tree.map(jnp.asarray, ct.to_flax(tnet.state_dict(), ct.nlayer_layout(2), 'instance',
                                           expected))
  gp = losses.gradient_penalty(lambda x: jnet.apply(v, x, train=True), real, fake,
                               jnp.asarray(alpha))
  tnet.train()
  t_gp = tr.gradient_penalty(tnet, tr.nhwc_to_torch(real), tr.nhwc_to_torch(fake),
                             torch.from_numpy(alpha)).detach()
  np.testing.assert_allclose(float(gp), t_gp.item(), rtol=1e-4)
  assert float(gp) > 1.0  # Far from unit gradient norm at init: a real penalty.
  # Its gradient with respect to D's weights (double backprop through the convolutions).
  g_jax = jax.grad(lambda p: losses.gradient_penalty(
      lambda x: jnet.apply({'params': p}, x, train=True), real, fake, jnp.asarray(alpha)))(
          v['params'])
  tnet.zero_grad()
  tr.gradient_penalty(tnet, tr.nhwc_to_torch(real), tr.nhwc_to_torch(fake),
                      torch.from_numpy(alpha)).backward()
  g_torch = ct.to_flax({k: torch.zeros_like(p) if p.grad is None else p.grad  # Output bias.
                       for k, p in tnet.named_parameters()}, ct.nlayer_layout(2),
                       'instance', expected)['params']
  # Biases before an instance norm have a true gradient of 0 (rounding noise on both
  # sides): the tolerance scales with the largest gradient, not each leaf's.
  scale = max(float(np.abs(b).max()) for b in jax.tree.leaves(g_torch))
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(g_jax), jax.tree.leaves(g_torch)):
    np.testing.assert_allclose(np.asarray(a), b, rtol=1e-3, atol=1e-4 * scale,
                               err_msg=str(path))
  # GANLoss('wgangp'): D = -mean(D(real)) + mean(D(fake)); G = -mean(D(fake)).
  r, f = np.float32([[0.5, -1.0], [2.0, 0.25]]), np.float32([[1.5, 0.0], [-0.5, 3.0]])
  d_real, d_fake = losses.d_loss_terms(jnp.asarray(r), jnp.asarray(f), 'wgangp')
  tr_r, tr_f = torch.from_numpy(r), torch.from_numpy(f)
  assert float(d_real) == pytest.approx(float(-tr_r.mean()))
  assert float(d_fake) == pytest.approx(float(tr_f.mean()))
  assert float(losses.g_gan_loss(jnp.asarray(f), 'wgangp')) == pytest.approx(float(-tr_f.mean()))


# ------------------------------------------------------------------ one train step


def adam_moments(opt, net, which):
  """The torch optimiser's ``which`` ('exp_avg' / 'exp_avg_sq') as a state dict of net."""
  sd = {k: v.clone() for k, v in net.state_dict().items()}  # Buffers (running stats) kept.
  for name, p in net.named_parameters():
    sd[name] = opt.state[p][which]
  return sd


def test_one_pix2pix_step_matches_pytorch():
  c = tiny_config()
  c.model.dropout = 0.0
  c.model.ngf = c.model.ndf = 4
  n = c.model.num_downs
  nets = make_networks(c, 3)
  state = create_train_state(nets, 0, (32, 32, 3), 3)
  torch.manual_seed(4)
  tg = perturb(tr.UnetGenerator(3, 3, n, 4, use_dropout=False))
  td = perturb(tr.NLayerDiscriminator(6, 4, 3), seed=1)
  g_layout, d_layout = ct.unet_layout(n, 'batch'), ct.nlayer_layout(3)
  g_want = {'params': state.g_params, 'batch_stats': state.g_batch_stats}
  d_want = {'params': state.d_params, 'batch_stats': state.d_batch_stats}
  g = jax.tree.map(jnp.asarray, ct.to_flax(tg.state_dict(), g_layout, 'batch', g_want))
  d = jax.tree.map(jnp.asarray, ct.to_flax(td.state_dict(), d_layout, 'batch', d_want))
  state = state.replace(g_params=g['params'], g_batch_stats=g['batch_stats'],
                        g_opt_state=nets.g_tx.init(g['params']), d_params=d['params'],
                        d_batch_stats=d['batch_stats'], d_opt_state=nets.d_tx.init(d['params']))
  x, y = images(2, 32, 3, seed=5), np.tanh(images(2, 32, 3, seed=6))
  new, metrics = jax.jit(lambda s, b: train_step(s, b, nets=nets))(state, {'input': x,
                                                                         'target': y})
  step = tr.make_torch_step(tg, td, lambda_l1=c.loss.lambda_l1, lr=c.optim.lr,
                            betas=(c.optim.b1, c.optim.b2))
  t = step(tr.nhwc_to_torch(x), tr.nhwc_to_torch(y))

  pairs = {'d_loss': 'loss_D', 'd_real': 'loss_D_real', 'd_fake': 'loss_D_fake',
           'g_gan': 'loss_G_GAN', 'g_loss': 'loss_G'}
  for j, k in pairs.items():
    assert float(metrics[j]) == pytest.approx(t[k], rel=1e-5, abs=1e-6), (j, k)
  assert float(metrics['g_l1']) * c.loss.lambda_l1 == pytest.approx(t['loss_G_L1'], rel=1e-5)

  def close(a, b, rtol=1e-4, scale=1e-4):
    for (path, u), w in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
      w = np.asarray(w)
      np.testing.assert_allclose(np.asarray(u), w, rtol=rtol,
                                 atol=scale * float(np.abs(w).max()) + 1e-12, err_msg=str(path))

  t_g = ct.to_flax(tg.state_dict(), g_layout, 'batch', g_want)
  t_d = ct.to_flax(td.state_dict(), d_layout, 'batch', d_want)
  moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                       new.g_params, state.g_params)
  assert min(jax.tree.leaves(moved)) > 0  # Every weight was updated.
  # One Adam step moves each weight by ~lr * sign(grad): all but the rare weight whose
  # gradient is within rounding of 0 agree far closer than that.
  for a, b in ((new.g_params, t_g['params']), (new.d_params, t_d['params'])):
    assert_adam_params_close(a, b, lr=c.optim.lr, tight=1e-6, max_loose_fraction=1e-3)
  np.testing.assert_allclose(  # G's running means (its single forward pass).
      np.asarray(new.g_batch_stats['BatchNorm_0']['mean']),
      t_g['batch_stats']['BatchNorm_0']['mean'], rtol=1e-4, atol=1e-7)
  for tx_state, net, opt, layout, want in (
      (new.g_opt_state, tg, step.optimizers['G'], g_layout, g_want),
      (new.d_opt_state, td, step.optimizers['D'], d_layout, d_want)):
    adam = tx_state[0]
    mu = ct.to_flax(adam_moments(opt, net, 'exp_avg'), layout, 'batch', want)['params']
    nu = ct.to_flax(adam_moments(opt, net, 'exp_avg_sq'), layout, 'batch', want)['params']
    assert int(adam.count) == 1 and all(int(s['step']) == 1 for s in opt.state.values())
    close(adam.mu, mu)
    close(adam.nu, nu, rtol=2e-4)
