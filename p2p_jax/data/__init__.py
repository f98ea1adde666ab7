"""Input data: paired-image sources (tfds builders, custom folders) and the tf.data pipeline.

This is the only subpackage that imports TensorFlow (the modules marked "No TensorFlow"
import without it).

* :mod:`~p2p_jax.data.sources`: the ``PairedSource`` interface, the dataset registry and
  the per-process shard rule;
* :mod:`~p2p_jax.data.pipeline` and :mod:`~p2p_jax.data.preprocess`: raw pairs -> model
  batches (train and eval), and single images / folders prepared the same way;
* the default dataset ``embedded``: :mod:`~p2p_jax.data.procedural_facades` draws it,
  :mod:`~p2p_jax.data.procedural_dataset` stores it as a tfds dataset;
* the pix2pix authors' datasets: :mod:`~p2p_jax.data.archives` (reading a release),
  :mod:`~p2p_jax.data.cityscapes` (pairing the official Cityscapes releases),
  :mod:`~p2p_jax.data.paired_builder` (the tfds builder), :mod:`~p2p_jax.data.standard`
  (the source);
* your own folders (``custom``): :mod:`~p2p_jax.data.folders`;
* :mod:`~p2p_jax.data.image_files` (image extensions, listing, opening),
  :mod:`~p2p_jax.data.facade_labels` and :mod:`~p2p_jax.data.label_classes` (the classes
  that label maps encode).

p2p_jax does not install TensorFlow itself (a machine may already have one, e.g. Colab's ``tensorflow``, and a second
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
