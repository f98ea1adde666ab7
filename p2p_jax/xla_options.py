"""XLA compiler options for the train step: which library runs XLA:CPU's convolutions.

``config.cpu_convolutions``:
  'auto': 'eigen' on the CPU backend when the installed jaxlib is a version this was measured
    on and accepts the option; XLA's default otherwise (and on GPU/TPU, and under pmap).
  'eigen': convolutions that XLA fuses with nothing run on Eigen instead of YNNPACK (dots and
    reductions stay on YNNPACK): the train step's compiler option
    ``xla_cpu_experimental_ynn_fusion_type``, the per-executable form of
    ``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``. A clear
    error if the installed XLA does not know the option.
  'xla_default': no compiler options.

Why (``docs/perf_notes.md``, fifth pass): on a 2-core AVX-512 + AMX Xeon the U-Net-256 train
step ran 1.06x faster at batch 4 with Eigen's convolutions (same-process A/B), mostly because
the cores stay busier. The option is experimental in XLA, so 'auto' applies it only to the
jaxlib versions listed below; a compiler option XLA does not know raises an error at compile
time (an ``XLA_FLAGS`` flag would abort the process), which the probe here turns into a
fallback. No TensorFlow.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jaxlib

from p2p_jax.errors import ConfigError

CHOICES = ('auto', 'eigen', 'xla_default')
_OPTION = 'xla_cpu_experimental_ynn_fusion_type'
# XLA's default YNNPACK fusion types minus individual convolutions: what the XLA_FLAGS form
# above leaves in DebugOptions with jaxlib 0.10.2 (the compiler option replaces the list).
_EIGEN_CONVOLUTIONS = {_OPTION: 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE'}
# jaxlib versions (prefixes) on which 'auto' picks 'eigen'. The fusion-type names are XLA
# internals that may change; extend this after measuring a new version.
AUTO_JAXLIB_VERSIONS = ('0.10.',)


@functools.lru_cache(maxsize=None)
def _accepted(option: str, value: str) -> bool:
  """Whether the CPU compiler accepts ``option=value`` (a tiny compile; cached)."""
  try:
    jax.jit(lambda x: x + 1).lower(jnp.zeros((2,), jnp.float32)).compile(
        compiler_options={option: value})
    return True
  except Exception:  # pylint: disable=broad-except  # JaxRuntimeError: unknown option/value.
    return False


def train_step_options(choice: str, parallelism: str = 'shard_map',
                       backend: str | None = None, jaxlib_version: str | None = None
                       ) -> tuple[str, dict[str, str] | None]:
  """Resolves ``config.cpu_convolutions``: returns (what applies, compiler options or None).

  The first item is 'eigen' or 'xla_default', for logs and benchmark lines.
  """
  if choice not in CHOICES:
    raise ConfigError(f'Unknown cpu_convolutions {choice!r}; choose from {CHOICES}.')
  backend = backend or jax.default_backend()
  jaxlib_version = jaxlib_version or jaxlib.__version__
  if choice == 'xla_default' or backend != 'cpu':
    return 'xla_default', None
  if parallelism == 'pmap':
    if choice == 'eigen':
      raise ConfigError("cpu_convolutions='eigen' needs parallelism='shard_map' (jax.pmap "
                        "takes no compiler options).")
    return 'xla_default', None
  if choice == 'auto' and not jaxlib_version.startswith(AUTO_JAXLIB_VERSIONS):
    return 'xla_default', None
  if _accepted(*next(iter(_EIGEN_CONVOLUTIONS.items()))):
    return 'eigen', dict(_EIGEN_CONVOLUTIONS)
  if choice == 'eigen':
    raise ConfigError(
        f"cpu_convolutions='eigen': this XLA (jaxlib {jaxlib_version}) does not accept the "
        f'compiler option {_OPTION}; use --config.cpu_convolutions=auto or xla_default.')
  return 'xla_default', None
