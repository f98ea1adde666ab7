"""Networks: exact parameter counts vs the reference, shapes, norms, dropout, size checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config

from p2p_jax.models import NLayerDiscriminator, PixelDiscriminator, UNetGenerator
from p2p_jax.models.discriminators import patch_receptive_field
from p2p_jax.errors import ConfigError
from p2p_jax.models.factory import check_image_size, min_image_size


def n_params(module, x, **kw):
  v = jax.eval_shape(lambda: module.init(jax.random.key(0), x, train=False, **kw))
  return sum(int(np.prod(p.shape)) for p in jax.tree.leaves(v['params']))


@pytest.mark.parametrize('num_downs,size,expected', [
    (8, 256, 54_413_955),  # Reference U-Net-256.
    (7, 128, 41_828_995),  # Reference U-Net-128 (41.83 M).
])
def test_unet_parameter_count_matches_reference(num_downs, size, expected):
  g = UNetGenerator(output_channels=3, num_downs=num_downs, ngf=64)
  assert n_params(g, jnp.zeros((1, size, size, 3))) == expected


def test_patchgan_parameter_count_matches_reference():
  d = NLayerDiscriminator(ndf=64, n_layers=3)
  assert n_params(d, jnp.zeros((1, 256, 256, 6))) == 2_768_705


def test_pixelgan_parameter_count():
  # 1x1 convs: 6*64+64 | 64*128 | BN 2*128 | 128*1 (reference bias rules with BatchNorm).
  d = PixelDiscriminator(ndf=64)
  assert n_params(d, jnp.zeros((1, 16, 16, 6))) == 6 * 64 + 64 + 64 * 128 + 256 + 128


def test_instance_norm_adds_conv_biases_but_no_affine():
  batch = n_params(NLayerDiscriminator(ndf=8, norm='batch'), jnp.zeros((1, 64, 64, 6)))
  inst = n_params(NLayerDiscriminator(ndf=8, norm='instance'), jnp.zeros((1, 64, 64, 6)))
  # BN: scale + bias (2C) on the 16, 32, 64-channel layers, no conv bias there;
  # instance norm: no affine, one conv bias (C) on the same layers.
  assert batch - inst == 16 + 32 + 64


def test_receptive_fields():
  assert [patch_receptive_field(n) for n in (1, 3, 5)] == [16, 70, 286]


def test_shapes_and_range():
  g = UNetGenerator(output_channels=1, num_downs=5, ngf=8)
  x = jax.random.normal(jax.random.key(1), (2, 32, 64, 3))
  v = g.init(jax.random.key(0), x, train=False)
  y = g.apply(v, x, train=False)
  assert y.shape == (2, 32, 64, 1)
  assert float(jnp.abs(y).max()) <= 1.0
  d = NLayerDiscriminator(ndf=8, n_layers=3)
  dv = d.init(jax.random.key(0), jnp.zeros((2, 64, 64, 4)), train=False)
  assert d.apply(dv, jnp.zeros((2, 64, 64, 4)), train=False).shape == (2, 6, 6, 1)


def test_fully_convolutional_larger_input():
  g = UNetGenerator(output_channels=3, num_downs=5, ngf=8)
  v = g.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False)
  assert g.apply(v, jnp.zeros((1, 64, 64, 3)), train=False).shape == (1, 64, 64, 3)


def test_dropout_is_the_only_noise_and_follows_the_flag():
  g = UNetGenerator(output_channels=3, num_downs=5, ngf=8)
  x = jax.random.normal(jax.random.key(1), (1, 32, 32, 3))
  v = g.init(jax.random.key(0), x, train=False)
  run = lambda key, dropout: g.apply(v, x, train=True, dropout=dropout,  # noqa: E731
                                     rngs={'dropout': jax.random.key(key)},
                                     mutable=['batch_stats'])[0]
  assert not np.allclose(run(1, True), run(2, True))
  np.testing.assert_array_equal(run(1, False), run(2, False))


def test_batch_one_bottleneck_is_not_zeroed():
  # Errata: without norm at the innermost level a batch of 1 still carries information.
  g = UNetGenerator(output_channels=3, num_downs=5, ngf=8, dropout_rate=0.0)
  x1 = jax.random.normal(jax.random.key(1), (1, 32, 32, 3))
  v = g.init(jax.random.key(0), x1, train=False)
  bottleneck = lambda x: g.apply(v, x, train=True, mutable=['batch_stats', 'intermediates'],  # noqa
                                 capture_intermediates=lambda m, _: m.name == 'down4')[1]
  act = bottleneck(x1)['intermediates']['down4']['__call__'][0]
  assert act.shape == (1, 1, 1, 64)
  assert float(jnp.abs(act).max()) > 0


@pytest.mark.parametrize('size', [16, 40, 33])
def test_image_size_errors_name_the_valid_sizes(size):
  c = tiny_config()  # num_downs 5: multiples of 32.
  with pytest.raises(ConfigError, match='multiple of 32'):
    check_image_size(c, size)


def test_min_image_size_accounts_for_patchgan():
  c = tiny_config()
  c.model.num_downs = 2
  c.model.n_layers = 3  # needs >= 24 px
  assert min_image_size(c) == 24
  check_image_size(c, 24)
  with pytest.raises(ConfigError):
    check_image_size(c, 20)
