"""Input data: paired-image sources (tfds builders, custom folders) and the tf.data pipeline.

This is the only subpackage that imports TensorFlow.
"""
