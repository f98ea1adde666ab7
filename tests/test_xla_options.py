"""config.cpu_convolutions: how it resolves, and that the option reaches XLA:CPU."""

import re

import jax
import jax.numpy as jnp
import jaxlib
import pytest
from jax import lax

from p2p_jax import xla_options
from p2p_jax.errors import ConfigError
from p2p_jax.parallel import DataParallel
from p2p_jax.train_step import make_networks

cpu_only = pytest.mark.skipif(jax.default_backend() != 'cpu', reason='an XLA:CPU option')


def test_resolution_rules():
  opts = xla_options.train_step_options
  assert opts('xla_default') == ('xla_default', None)
  # Not the CPU backend, pmap, or a jaxlib 'auto' was not measured on: XLA's default.
  assert opts('eigen', backend='gpu') == ('xla_default', None)
  assert opts('auto', backend='tpu') == ('xla_default', None)
  assert opts('auto', 'pmap', backend='cpu') == ('xla_default', None)
  assert opts('auto', backend='cpu', jaxlib_version='99.0.0') == ('xla_default', None)
  with pytest.raises(ConfigError, match='shard_map'):
    opts('eigen', 'pmap', backend='cpu')
  with pytest.raises(ConfigError, match="Unknown cpu_convolutions 'fast'"):
    opts('fast')


@cpu_only
def test_this_jaxlib_accepts_the_option_when_auto_would_use_it():
  applied, options = xla_options.train_step_options('auto')
  if jaxlib.__version__.startswith(xla_options.AUTO_JAXLIB_VERSIONS):
    assert applied == 'eigen' and options  # A version listed as measured must accept it.
  else:
    assert (applied, options) == ('xla_default', None)


@cpu_only
def test_unknown_option_falls_back_or_fails_clearly(monkeypatch):
  monkeypatch.setattr(xla_options, '_EIGEN_CONVOLUTIONS',
                      {'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_NOPE'})
  xla_options._accepted.cache_clear()
  try:
    assert xla_options.train_step_options('auto', jaxlib_version='0.10.2') == (
        'xla_default', None)
    with pytest.raises(ConfigError, match='does not accept the compiler option'):
      xla_options.train_step_options('eigen')
  finally:
    xla_options._accepted.cache_clear()


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


@cpu_only
def test_eigen_option_moves_convolutions_off_ynnpack():
  if not _on_ynnpack(_conv_hlo(None)):
    pytest.skip('This XLA does not run convolutions on YNNPACK; nothing to move.')
  _, options = xla_options.train_step_options('eigen')
  hlo = _conv_hlo(options)
  assert not _on_ynnpack(hlo)
  assert ' convolution(' in hlo


def test_pmap_refuses_compiler_options():
  from conftest import tiny_config
  nets = make_networks(tiny_config(), 3, multi_device=True)
  with pytest.raises(ConfigError, match='pmap'):
    DataParallel(nets, 'pmap', jax.local_devices()[:1], compiler_options={'a': 'b'})


@pytest.mark.parametrize('choice', ['auto', 'xla_default'])
def test_step_from_config_carries_the_options_and_the_matching_convolutions(choice):
  """The builder that train_and_evaluate and the bench share: what the config asks for
  reaches the jitted step, and the networks' gradient formulations match it."""
  from conftest import tiny_config
  config = tiny_config(cpu_convolutions=choice, steps_per_dispatch=2)
  dp = DataParallel.from_config(config, 3, devices=jax.local_devices()[:1])
  applied, options = xla_options.train_step_options(choice)
  assert dp.cpu_convolutions == applied
  assert dp.compiler_options == options
  assert dp.steps_per_dispatch == 2
  other = make_networks(config, 3, multi_device=True, cpu_convolutions=applied)
  assert dp.nets.g.conv_impl == other.g.conv_impl
  if jax.default_backend() == 'cpu' and choice == 'auto' and applied == 'eigen':
    assert dp.nets.g.conv_impl == 'fast_eigen'
