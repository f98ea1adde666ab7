"""Input data: paired-image sources (tfds builders, custom folders) and the tf.data pipeline.

This is the only subpackage that imports TensorFlow. p2p_jax does not install TensorFlow
itself (a machine may already have one, e.g. Colab's ``tensorflow``, and a second
distribution beside it would break both): ``pip install -e ".[tensorflow]"`` adds
``tensorflow-cpu`` where none is installed.
"""

try:
  import tensorflow as _tf  # noqa: F401
except ImportError as _e:
  from p2p_jax.errors import DependencyError
  raise DependencyError(
      'The input pipeline needs TensorFlow, which is not installed: run '
      '`pip install tensorflow-cpu` (or `pip install -e ".[tensorflow]"` in the p2p_jax '
      f'checkout). ({_e})') from _e
