"""p2p_jax: pix2pix (Isola et al. 2017) in JAX/Flax.

Model, loss and train-step modules import without TensorFlow; only ``p2p_jax.data``
uses it.
"""

__version__ = '0.1.0'
