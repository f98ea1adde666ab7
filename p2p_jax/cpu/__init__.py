"""CPU-only tuning: the CPU is for the demo, tests and CI; none of this runs on GPU/TPU.

* ``ops``: fast forms of the 4x4 (transposed) convolutions for XLA:CPU.
* ``xla_options``: the compiler option that runs a step's convolutions on Eigen, on the
  jaxlib versions where it is known to work.
* ``allocator``: tcmalloc for ``python -m p2p_jax.main`` / ``p2p_jax.bench`` on CPU-only
  machines.
* ``bench_ops``: a per-layer benchmark of the ``ops`` forms.

Model and step code never import these: ``p2p_jax.convolution`` is the one place that
decides how convolutions run on each backend; the entry points and the training loop use
``allocator``.
"""
