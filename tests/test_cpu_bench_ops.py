"""The per-layer micro-benchmark times each form and compiles with the options it is given."""

import jax
import pytest

from p2p_jax import convolution
from p2p_jax.cpu import bench_ops


def test_bench_layers_times_each_form_on_given_shapes():
  plan = convolution.step_plan('cpu')
  rows = bench_ops.bench_layers('conv', batch=2, impls=['xla', 'fast_eigen'], reps=1,
                                use_torch=False, compiler_options=plan.compiler_options,
                                shapes=[(8, 4, 8)])
  assert len(rows) == 1 and rows[0]['shape'] == (2, 8, 8, 4, 8)
  assert rows[0]['xla'] > 0 and rows[0]['fast_eigen'] > 0
  rows = bench_ops.bench_layers('conv_transpose', batch=1, impls=['subpixel', 'matmul'],
                                reps=1, use_torch=False, shapes=[(4, 4, 8)])
  assert rows[0]['shape'] == (1, 4, 4, 4, 8) and rows[0]['matmul'] > 0


def test_bench_layers_passes_the_compiler_options_to_xla():
  if jax.default_backend() != 'cpu':
    pytest.skip('the option below is an XLA:CPU one')
  bad = {'xla_cpu_experimental_ynn_fusion_type': 'NOT_A_FUSION_TYPE'}
  with pytest.raises(Exception):  # XLA rejects the value at compile time.
    bench_ops.bench_layers('conv_s1', batch=1, impls=['xla'], reps=1, use_torch=False,
                           compiler_options=bad, shapes=[(8, 4, 8)])
