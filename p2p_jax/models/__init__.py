"""pix2pix networks as pure Flax modules (no TensorFlow)."""

from p2p_jax.models.discriminators import NLayerDiscriminator, PixelDiscriminator
from p2p_jax.models.factory import build_discriminator, build_generator, min_image_size
from p2p_jax.models.unet import UNetGenerator

__all__ = ['NLayerDiscriminator', 'PixelDiscriminator', 'UNetGenerator',
           'build_generator', 'build_discriminator', 'min_image_size']
