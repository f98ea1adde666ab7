"""BatchNorm parameters start as the reference's init_weights draws them: scale ~ N(1, std)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from p2p_jax.models.discriminators import NLayerDiscriminator, PixelDiscriminator
from p2p_jax.models.layers import make_norm
from p2p_jax.models.unet import UNetGenerator


class _Norm(nn.Module):
  init_std: float

  @nn.compact
  def __call__(self, x):
    return make_norm('batch', train=True, init_std=self.init_std)(x)


@pytest.mark.parametrize('std', [0.02, 0.1])
def test_batchnorm_scale_is_normal_around_one_and_bias_zero(std):
  params = _Norm(std).init(jax.random.key(0), jnp.zeros((2, 100_000)))['params']
  scale = np.asarray(params['BatchNorm_0']['scale'], np.float64)
  assert scale.dtype == np.float64 and scale.shape == (100_000,)
  # 100k draws: the mean is within 5 standard errors, the std within 2%.
  assert abs(scale.mean() - 1.0) < 5 * std / np.sqrt(scale.size)
  assert abs(scale.std() / std - 1.0) < 0.02
  np.testing.assert_array_equal(np.asarray(params['BatchNorm_0']['bias']), 0.0)


def test_networks_pass_their_init_std_to_batchnorm():
  std = 0.05
  nets = [(UNetGenerator(num_downs=3, ngf=64, init_std=std), 3),  # BN on 128 + 64 + 128 ch.
          (NLayerDiscriminator(ndf=64, n_layers=1, init_std=std), 6),  # 128.
          (PixelDiscriminator(ndf=64, init_std=std), 6)]  # 128.
  for i, (module, channels) in enumerate(nets):
    x = jnp.zeros((1, 8, 8, channels))
    # Jitted: eager op-by-op init is much slower.
    params = jax.jit(lambda k: module.init(k, x, train=False))(jax.random.key(i))['params']
    leaves = [(jax.tree_util.keystr(p), np.asarray(v))
              for p, v in jax.tree_util.tree_leaves_with_path(params)]
    scales = np.concatenate([v for p, v in leaves if 'BatchNorm' in p and 'scale' in p])
    biases = [v for p, v in leaves if 'BatchNorm' in p and 'bias' in p]
    assert scales.size >= 128
    # >= 128 draws: mean within ~4.5 standard errors, std within ~25%.
    assert abs(scales.mean() - 1.0) < 0.02 and abs(scales.std() / std - 1.0) < 0.25, type(module)
    assert biases and all((b == 0).all() for b in biases)
