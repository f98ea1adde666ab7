"""The Eigen-convolution compiler option: the jaxlib range it is applied on, and that on
those versions XLA:CPU accepts it and moves convolutions off YNNPACK (fails, never skips,
inside the range: the option is an XLA internal)."""

import os
import re

import jax
import jax.numpy as jnp
import jaxlib
import pytest
from jax import lax

from p2p_jax.cpu import xla_options


def test_version_parsing_and_range():
  assert xla_options.version_tuple('0.10.2') == (0, 10, 2)
  assert xla_options.version_tuple('0.11.0rc1') == (0, 11, 0)
  assert xla_options.version_tuple('0.10.2.dev20260101+cuda') == (0, 10, 2)
  assert xla_options.version_tuple('1.0') == (1, 0, 0)
  lo, hi = xla_options.JAXLIB_RANGE
  assert lo < hi
  inside = '.'.join(map(str, lo))
  assert xla_options.in_range(inside)
  assert not xla_options.in_range('.'.join(map(str, hi)))
  assert not xla_options.in_range('0.4.30')
  assert set(xla_options.eigen_convolutions(inside)) == {xla_options.OPTION}
  assert xla_options.eigen_convolutions('99.0.0') is None


def test_the_ci_jaxlib_is_inside_the_range():
  """CI must exercise the option (tests of XLA internals skip outside the range): moving CI
  to a new jaxlib means measuring the option there and widening the range, or dropping it.
  Elsewhere a jaxlib outside the range just runs without the option."""
  if not xla_options.in_range() and not os.environ.get('CI'):
    pytest.skip(f'jaxlib {jaxlib.__version__} is outside {xla_options.JAXLIB_RANGE}; '
                'the option is not applied')
  assert xla_options.in_range(), (jaxlib.__version__, xla_options.JAXLIB_RANGE)


def _conv_hlo(options):
  f = lambda x, k: jnp.tanh(lax.conv_general_dilated(  # noqa: E731
      x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')))
  args = (jnp.ones((2, 32, 32, 64)), jnp.ones((4, 4, 64, 64)))
  return jax.jit(f).lower(*args).compile(compiler_options=options).as_text()


def _on_ynnpack(hlo):
  """Whether a convolution sits inside a computation that a YNNPACK fusion calls."""
  bodies = {m.group(1): m.group(2)
            for m in re.finditer(r'\n%([\w.\-]+) [^\n]*\{\n(.*?)\n\}', hlo, re.S)}
  called = re.findall(r'%ynn_fusion[\w.]* = [^\n]*calls=%([\w.\-]+)', hlo)
  return any(' convolution(' in bodies.get(c, '') for c in called)


@pytest.mark.skipif(not xla_options.in_range(),
                    reason='the option is only applied (and checked) inside JAXLIB_RANGE')
def test_inside_the_range_the_option_moves_convolutions_off_ynnpack():
  options = xla_options.eigen_convolutions()
  assert options
  assert _on_ynnpack(_conv_hlo(None)), 'XLA:CPU no longer runs convolutions on YNNPACK'
  hlo = _conv_hlo(options)  # Raises if XLA does not know the option or its value.
  assert not _on_ynnpack(hlo)
  assert ' convolution(' in hlo


def test_xla_rejects_an_unknown_value():
  """What the range guards against: an option value XLA does not know fails the compile."""
  with pytest.raises(Exception):
    _conv_hlo({xla_options.OPTION: 'LIBRARY_FUSION_TYPE_NOPE'})
