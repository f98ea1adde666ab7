"""The networks' convolutions, computed the way that is fastest on the backend.

Model code calls ``conv`` and ``conv_transpose_4x4_s2`` with what the paper specifies
(kernel, stride, padding); this module alone decides how they are computed:

* GPU / TPU (and any backend but CPU): plain XLA convolutions.
* CPU: the forms of ``p2p_jax.cpu.ops`` for the 4x4 convolutions (same values, faster
  gradients on XLA:CPU), and, for a jitted train step on a jaxlib where it is known to pay,
  the compiler option that runs convolutions on Eigen (``p2p_jax.cpu.xla_options``) with
  the gradient forms tuned for it. ``step_plan`` returns both together: the compiler
  options for the jitted step and the convolution forms its trace must use.

The choice is made at trace time: a step built from a ``StepPlan`` traces under
``plan.wrap``; everything else (initialisation, sampling, evaluation) uses the default
plan of ``jax.default_backend()``.

Expert override (benchmarks, A/B tests), the only one: the environment variable
``P2P_JAX_CPU_CONV`` = ``auto`` (default: the above), ``fast`` (the CPU forms without the
Eigen option) or ``xla`` (plain XLA convolutions, as on GPU). It affects CPU only and never
changes results beyond float rounding.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import os
from collections.abc import Mapping
from typing import Callable

import jax
from jax import lax

from p2p_jax.cpu import ops, xla_options
from p2p_jax.errors import ConfigError

OVERRIDE_ENV = 'P2P_JAX_CPU_CONV'
OVERRIDES = ('auto', 'fast', 'xla')
_DN = ('NHWC', 'HWIO', 'NHWC')

# Forms: (conv 4x4 stride 2, conv 4x4 stride 1, transposed conv 4x4 stride 2).
_FORMS: dict[str, tuple[Callable, Callable, Callable]] = {
    'xla': (ops.conv_4x4_s2_xla, ops.conv_4x4_s1_xla, ops.conv_transpose_4x4_s2_xla),
    'fast': (ops.conv_4x4_s2_fast, ops.conv_4x4_s1_fast, ops.conv_transpose_4x4_s2_fast),
    'fast_eigen': (ops.conv_4x4_s2_fast_eigen, ops.conv_4x4_s1_fast_eigen,
                   ops.conv_transpose_4x4_s2_fast),
}
_active: contextvars.ContextVar[str | None] = contextvars.ContextVar('p2p_jax_conv_forms',
                                                                    default=None)


@dataclasses.dataclass(frozen=True)
class StepPlan:
  """How a jitted train step computes its convolutions.

  ``forms``: 'xla', 'fast' or 'fast_eigen' (what the trace uses; also for logs and bench
  lines). ``compiler_options``: for ``jax.jit(..., compiler_options=...)``, or None.
  """

  forms: str
  compiler_options: dict[str, str] | None = None

  def wrap(self, fn: Callable) -> Callable:
    """``fn`` tracing its convolutions in this plan's forms (wrap before jit/pmap)."""
    @functools.wraps(fn)
    def traced(*args, **kwargs):
      with use_forms(self.forms):
        return fn(*args, **kwargs)
    return traced


def step_plan(platform: str | None = None, parallelism: str = 'shard_map',
              env: Mapping[str, str] | None = None) -> StepPlan:
  """The plan for a train step on ``platform`` (default: JAX's default backend), mapped
  with ``parallelism`` ('pmap' takes no compiler options). ``env``: default os.environ."""
  env = os.environ if env is None else env
  override = env.get(OVERRIDE_ENV, '').strip() or 'auto'
  return _plan(platform or jax.default_backend(), parallelism, override)


@functools.lru_cache(maxsize=None)
def _plan(platform: str, parallelism: str, override: str) -> StepPlan:
  if override not in OVERRIDES:
    raise ConfigError(f'{OVERRIDE_ENV}={override!r}: choose from {", ".join(OVERRIDES)} '
                      '(or leave it unset).')
  if platform != 'cpu' or override == 'xla':
    return StepPlan('xla')
  options = xla_options.eigen_convolutions() if override == 'auto' else None
  if options and parallelism != 'pmap':
    return StepPlan('fast_eigen', options)
  return StepPlan('fast')


@contextlib.contextmanager
def use_forms(forms: str):
  """Within this context, ``conv`` and ``conv_transpose_4x4_s2`` trace in ``forms``."""
  if forms not in _FORMS:
    raise ValueError(f'Unknown convolution forms {forms!r}; choose from {sorted(_FORMS)}.')
  token = _active.set(forms)
  try:
    yield
  finally:
    _active.reset(token)


def current_forms() -> str:
  """The forms traced now: those of the enclosing ``use_forms``, else the default plan's."""
  return _active.get() or step_plan().forms


def conv(x: jax.Array, kernel: jax.Array, stride: int, padding: int) -> jax.Array:
  """k x k convolution, NHWC x HWIO, symmetric zero padding (PyTorch Conv2d semantics)."""
  k = kernel.shape[:2]
  if k == (4, 4) and padding == 1 and stride in (1, 2):
    s2, s1, _ = _FORMS[current_forms()]
    return (s2 if stride == 2 else s1)(x, kernel)
  return lax.conv_general_dilated(x, kernel, (stride, stride),
                                  ((padding, padding), (padding, padding)),
                                  dimension_numbers=_DN)


def conv_transpose_4x4_s2(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """4x4 stride-2 transposed convolution, PyTorch ``ConvTranspose2d(4, 2, padding=1)``:
  [N,H,W,Ci] -> [N,2H,2W,Co]."""
  return _FORMS[current_forms()][2](x, kernel)
