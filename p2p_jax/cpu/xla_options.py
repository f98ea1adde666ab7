"""The XLA compiler option that runs a CPU train step's convolutions on Eigen.

What it buys: on jaxlib 0.10, XLA:CPU runs convolutions on YNNPACK by default; a train
step of the U-Net + PatchGAN keeps the cores busier, and runs a few percent faster at
batch 4, with its unfused convolutions on Eigen (dots and reductions stay on YNNPACK).

The option (``xla_cpu_experimental_ynn_fusion_type``) and its enum strings are XLA
internals that may change or vanish in any release, so they are applied only on the
jaxlib versions in ``JAXLIB_RANGE``; ``tests/test_cpu_xla_options.py`` fails (it does not
skip) when a jaxlib inside that range rejects the option or stops moving convolutions off
YNNPACK with it. Widen the range only after measuring a new jaxlib (``p2p_jax.bench``).
Used through ``p2p_jax.convolution.step_plan`` only. No TensorFlow.
"""

from __future__ import annotations

import jaxlib

# [lowest, highest) jaxlib version on which the option below is known to work and pay.
JAXLIB_RANGE = ((0, 10, 0), (0, 11, 0))
OPTION = 'xla_cpu_experimental_ynn_fusion_type'
# XLA's default YNNPACK fusion types minus individual convolutions (what
# XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution leaves on jaxlib
# 0.10; the compiler option replaces the whole list).
_VALUE = 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE'


def version_tuple(version: str) -> tuple[int, ...]:
  """'0.10.2' -> (0, 10, 2); pre-release / local suffixes are dropped ('0.11.0rc1' ->
  (0, 11, 0))."""
  parts = []
  for piece in version.split('+')[0].split('.')[:3]:
    digits = ''
    for ch in piece:
      if not ch.isdigit():
        break
      digits += ch
    parts.append(int(digits or 0))
  return tuple(parts + [0] * (3 - len(parts)))


def in_range(jaxlib_version: str | None = None) -> bool:
  """Whether ``jaxlib_version`` (default: the installed one) is inside ``JAXLIB_RANGE``."""
  v = version_tuple(jaxlib_version or jaxlib.__version__)
  return JAXLIB_RANGE[0] <= v < JAXLIB_RANGE[1]


def eigen_convolutions(jaxlib_version: str | None = None) -> dict[str, str] | None:
  """Compiler options (for ``jax.jit(..., compiler_options=...)``) that put a CPU step's
  convolutions on Eigen, or None outside ``JAXLIB_RANGE``."""
  return {OPTION: _VALUE} if in_range(jaxlib_version) else None
