"""Builds the networks named by a config, and checks that an image size fits them."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from p2p_jax.errors import ConfigError
from p2p_jax.models.discriminators import NLayerDiscriminator, PixelDiscriminator
from p2p_jax.models.unet import UNetGenerator

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(config: ml_collections.ConfigDict):
  if config.dtype not in DTYPES:
    raise ConfigError(f'dtype must be one of {sorted(DTYPES)}, got {config.dtype!r}.')
  return DTYPES[config.dtype]


def build_generator(config: ml_collections.ConfigDict, output_channels: int,
                    axis_name: str | None = None) -> UNetGenerator:
  m = config.model
  if m.generator != 'unet':
    raise ConfigError(f"model.generator must be 'unet', got {m.generator!r}.")
  return UNetGenerator(output_channels=output_channels, num_downs=m.num_downs, ngf=m.ngf,
                       norm=m.g_norm, dropout_rate=m.dropout, init_std=m.init_std,
                       axis_name=axis_name, dtype=compute_dtype(config))


def build_discriminator(config: ml_collections.ConfigDict, axis_name: str | None = None):
  m = config.model
  kw = dict(ndf=m.ndf, norm=m.d_norm, init_std=m.init_std, axis_name=axis_name,
            dtype=compute_dtype(config))
  if m.discriminator == 'patch':
    return NLayerDiscriminator(n_layers=m.n_layers, **kw)
  if m.discriminator == 'pixel':
    return PixelDiscriminator(**kw)
  raise ConfigError(f"model.discriminator must be 'patch' or 'pixel', got {m.discriminator!r}.")


def size_multiple(config: ml_collections.ConfigDict) -> int:
  """Image sides must be multiples of this (each U-Net level halves them)."""
  return 2 ** config.model.num_downs


def min_image_size(config: ml_collections.ConfigDict) -> int:
  """Smallest side the generator and discriminator accept."""
  g = size_multiple(config)
  if config.model.discriminator == 'patch':
    # n strided convs, then two 4x4 stride-1 convs with padding 1 (each removes one pixel).
    d = 3 * 2 ** config.model.n_layers
    return max(g, -(-d // g) * g)
  return g


def check_image_size(config: ml_collections.ConfigDict, height: int, width: int | None = None,
                     what: str = 'image_size') -> None:
  """Raises ConfigError naming the valid sizes when (height, width) does not fit the nets."""
  width = height if width is None else width
  mult, smallest = size_multiple(config), min_image_size(config)
  for side in (height, width):
    if side < smallest or side % mult:
      raise ConfigError(
          f'{what} {height}x{width} does not fit the networks: with model.num_downs='
          f'{config.model.num_downs} each side must be a multiple of {mult} and at least '
          f'{smallest} (e.g. {smallest}, {smallest + mult}, {smallest + 2 * mult}, ...). '
          + (f'Change {what}, or model.num_downs (8 for 256 px, 7 for 128, 6 for 64, 5 for 32).'
             if what == 'image_size' else f'Change {what}; the model comes from the checkpoint.'))
