"""The FCN-score's segmenter (pix2pix Sec. 4.2, Table 1), the project's stand-in for FCN-8s.

The paper judges generated photos by how well an off-the-shelf segmenter (FCN-8s trained
on real Cityscapes photos) recovers the label map they were generated from. This package
trains its own small segmenter on the real photos of a dataset whose label maps encode
classes (:mod:`p2p_jax.data.label_classes`):

* :mod:`~p2p_jax.segmenter.model`: the network (a small fully convolutional U-Net), its
  settings (an optional ``config.fcn`` section) and a trained instance's predictions;
* :mod:`~p2p_jax.segmenter.cache`: where trained weights are kept and how they are found;
* :mod:`~p2p_jax.segmenter.training`: training one (Adam, per-pixel cross-entropy on the
  train split's real photo -> class map pairs, with pix2pix's jitter and mirroring), or
  loading the cached one.

The scores themselves are in :mod:`p2p_jax.evaluation` and :mod:`p2p_jax.metrics`.
"""
