"""The CycleGAN ResNet generator and the instance-norm PatchGAN: counts, shapes, layers,
and (where torch is installed) equal outputs to the reference networks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from p2p_jax.models.discriminators import NLayerDiscriminator
from p2p_jax.models.layers import make_norm
from p2p_jax.models.resnet import PlainConvTranspose, ResnetGenerator, reflection_pad


def _count(tree):
  return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


def _abstract_params(module, shape):
  x = jnp.zeros(shape, jnp.float32)
  return jax.eval_shape(lambda: module.init(jax.random.key(0), x, train=False))['params']


@pytest.mark.parametrize('blocks,expected', [(9, 11_378_179), (6, 7_837_699)])
def test_resnet_parameter_counts(blocks, expected):
  params = _abstract_params(ResnetGenerator(3, blocks), (1, 256, 256, 3))
  assert _count(params) == expected
  # The reference's per-layer counts (DESIGN.md): c7s1-64, d128, d256, u128, u64, c7s1-3.
  per_layer = {k: _count(v) for k, v in params.items()}
  assert [per_layer[k] for k in ('c7s1_in', 'down0', 'down1', 'up0', 'up1', 'c7s1_out')] == \
      [9_472, 73_856, 295_168, 295_040, 73_792, 9_411]


def test_instance_norm_patchgan_parameter_count_and_map():
  d = NLayerDiscriminator(norm='instance')
  params = _abstract_params(d, (1, 256, 256, 3))
  assert _count(params) == 2_764_737
  assert [_count(v) for v in params.values()] == [3_136, 131_200, 524_544, 2_097_664, 8_193]
  x = jnp.zeros((1, 256, 256, 3))
  out = jax.eval_shape(lambda: d.init_with_output(jax.random.key(0), x, train=False)[0])
  assert out.shape == (1, 30, 30, 1)


def test_resnet_shapes_range_and_init():
  g = ResnetGenerator(output_channels=2, num_blocks=2, ngf=8)
  x = jax.random.uniform(jax.random.key(1), (2, 32, 48, 3), minval=-1, maxval=1)
  variables = jax.jit(functools.partial(g.init, train=True))(jax.random.key(0), x)
  assert set(variables) == {'params'}  # Instance norm: nothing but conv weights.
  y = jax.jit(functools.partial(g.apply, train=True))(variables, x)
  assert y.shape == (2, 32, 48, 2)
  assert float(jnp.abs(y).max()) <= 1.0
  # Biases start at zero, kernels ~ N(0, 0.02).
  leaves = jax.tree_util.tree_leaves_with_path(variables['params'])
  biases = [v for p, v in leaves if p[-1].key == 'bias']
  kernels = np.concatenate([np.ravel(v) for p, v in leaves if p[-1].key == 'kernel'])
  assert len(biases) == 1 + 2 + 2 * 2 + 2 + 1 and all(float(jnp.abs(b).max()) == 0 for b in biases)
  assert abs(kernels.std() - 0.02) < 2e-3 and abs(kernels.mean()) < 2e-3


def test_resnet_batch_norm_drops_biases_except_the_last():
  params = _abstract_params(ResnetGenerator(3, 1, ngf=8, norm='batch'), (1, 32, 32, 3))
  with_bias = [k for k, v in params.items() if 'bias' in v and not k.startswith('BatchNorm')]
  assert with_bias == ['c7s1_out']


def test_instance_norm_has_no_parameters_and_normalises_each_channel():
  x = jax.random.normal(jax.random.key(0), (3, 8, 10, 4)) * jnp.array([1., 5., 0.5, 30.]) + 2.
  variables = jax.jit(lambda: _NormOnly().init(jax.random.key(0), x))()
  assert not jax.tree.leaves(variables)
  y = np.asarray(_NormOnly().apply(variables, x))
  np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-5)
  np.testing.assert_allclose(y.var(axis=(1, 2)), 1, rtol=1e-3)  # eps 1e-5 is negligible here.
  # Per example and channel: eps 1e-5, biased variance (PyTorch's InstanceNorm2d).
  xn = np.asarray(x)
  want = (xn - xn.mean((1, 2), keepdims=True)) / np.sqrt(xn.var((1, 2), keepdims=True) + 1e-5)
  np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


import flax.linen as nn  # noqa: E402


class _NormOnly(nn.Module):
  @nn.compact
  def __call__(self, x):
    return make_norm('instance', train=True)(x)


def test_reflection_pad_matches_torch_semantics():
  x = jnp.arange(4.)[None, :, None, None] * jnp.ones((1, 4, 3, 1))
  y = reflection_pad(x, 2)
  assert y.shape == (1, 8, 7, 1)
  np.testing.assert_array_equal(np.asarray(y[0, :, 0, 0]), [2, 1, 0, 1, 2, 3, 2, 1])


def _conv_transpose_by_scatter(x, w, s, p, op):
  """PyTorch ConvTranspose2d from its definition: each input pixel scatters a kernel."""
  n, h, wd, _ = x.shape
  k = w.shape[0]
  ho, wo = (h - 1) * s - 2 * p + k + op, (wd - 1) * s - 2 * p + k + op
  full = np.zeros((n, (h - 1) * s + k + op, (wd - 1) * s + k + op, w.shape[-1]))
  for i in range(h):
    for j in range(wd):
      full[:, i * s:i * s + k, j * s:j * s + k] += np.einsum('nc,abco->nabo', x[:, i, j], w)
  return full[:, p:p + ho, p:p + wo]


@pytest.mark.parametrize('k,s,p,op', [(3, 2, 1, 1), (3, 2, 1, 0), (4, 2, 1, 0), (3, 1, 1, 0)])
def test_conv_transpose_is_pytorchs(k, s, p, op):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
  m = PlainConvTranspose(6, k, s, p, op, use_bias=False, init_std=1.0)
  variables = m.init(jax.random.key(0), x)
  y = np.asarray(m.apply(variables, x))
  want = _conv_transpose_by_scatter(x.astype(np.float64),
                                    np.asarray(variables['params']['kernel'], np.float64),
                                    s, p, op)
  assert y.shape == want.shape
  np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


# --- Parity with the PyTorch reference networks (skipped without torch) -----------------

@pytest.fixture(name='torch')
def _torch_fixture():
  return pytest.importorskip('torch', reason='PyTorch not installed: reference parity skipped')


def _torch_out(net, x, torch):
  from p2p_jax import torch_reference as tr
  with torch.no_grad():
    return net(tr.nhwc_to_torch(x)).numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize('size,blocks,ngf', [(32, 2, 8), (48, 3, 4)])
def test_resnet_generator_equals_reference(torch, size, blocks, ngf):
  from p2p_jax import torch_reference as tr
  torch.manual_seed(size)
  net = tr.ResnetGenerator(3, 2, ngf=ngf, n_blocks=blocks)
  assert tr.count_params(net) == _count(_abstract_params(
      ResnetGenerator(2, blocks, ngf), (1, size, size, 3)))
  g = ResnetGenerator(output_channels=2, num_blocks=blocks, ngf=ngf)
  x = np.random.default_rng(size).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
  params = tr.flax_params_from_torch(net, _abstract_params(g, x.shape),
                                     tr.resnet_flax_paths(blocks))
  y = np.asarray(jax.jit(functools.partial(g.apply, train=True))({'params': params}, x))
  np.testing.assert_allclose(y, _torch_out(net, x, torch), rtol=1e-4, atol=2e-5)


def test_paper_resnet_counts_in_torch(torch):
  from p2p_jax import torch_reference as tr
  assert tr.count_params(tr.ResnetGenerator(3, 3, 64, 9)) == 11_378_179
  assert tr.count_params(tr.ResnetGenerator(3, 3, 64, 6)) == 7_837_699
  assert tr.count_params(tr.NLayerDiscriminator(3, 64, 3, norm='instance')) == 2_764_737


@pytest.mark.parametrize('size', [32, 48])
def test_instance_norm_patchgan_equals_reference(torch, size):
  from p2p_jax import torch_reference as tr
  torch.manual_seed(size)
  net = tr.NLayerDiscriminator(3, 8, 3, norm='instance')
  d = NLayerDiscriminator(ndf=8, n_layers=3, norm='instance')
  x = np.random.default_rng(size).uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
  params = tr.flax_params_from_torch(net, _abstract_params(d, x.shape),
                                     tr.patchgan_flax_paths(3))
  y = np.asarray(jax.jit(functools.partial(d.apply, train=True))({'params': params}, x))
  want = _torch_out(net, x, torch)
  assert y.shape == want.shape
  np.testing.assert_allclose(y, want, rtol=1e-4, atol=2e-5)
