"""The entry points' restart under tcmalloc (p2p_jax/cpu/allocator.py): when it happens,
and that it never happens on a machine with an accelerator, under a debugger or in a
notebook, or when turned off."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

from p2p_jax.cpu import allocator

TC = '/opt/lib/libtcmalloc_minimal.so.4'


def _found():
  return TC


def _cpu_only(env):
  return False


def test_auto_preloads_tcmalloc_before_what_was_preloaded():
  env = allocator.restart_env({'LD_PRELOAD': 'libfoo.so', 'HOME': '/h'}, 'linux', _found,
                              _cpu_only)
  assert env['LD_PRELOAD'] == f'{TC}:libfoo.so'
  assert env[allocator.APPLIED_ENV] == TC
  assert env['HOME'] == '/h'
  assert int(env['TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD']) > 2 ** 40
  env = allocator.restart_env({'TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD': '5'}, 'linux', _found,
                              _cpu_only)
  assert env['LD_PRELOAD'] == TC
  assert env['TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD'] == '5'  # The user's choice stands.


@pytest.mark.parametrize('env,platform,find,accelerator', [
    ({}, 'linux', lambda: None, _cpu_only),                    # nothing installed
    ({}, 'darwin', _found, _cpu_only),                         # not Linux
    ({allocator.ENV: '0'}, 'linux', _found, _cpu_only),        # turned off
    ({allocator.APPLIED_ENV: TC}, 'linux', _found, _cpu_only),  # already restarted once
    ({'LD_PRELOAD': f'x.so {TC}'}, 'linux', _found, _cpu_only),  # preloaded by the user
    ({}, 'linux', _found, lambda env: True),                   # a GPU or TPU machine
])
def test_no_restart(env, platform, find, accelerator):
  assert allocator.restart_env(env, platform, find, accelerator) is None


def test_any_other_value_leaves_it_on():
  assert allocator.restart_env({allocator.ENV: '1'}, 'linux', _found, _cpu_only)


def test_accelerator_detection(tmp_path):
  none = lambda name: False  # noqa: E731
  assert not allocator.has_accelerator({}, [str(tmp_path / 'nvidia[0-9]*')], none)
  (tmp_path / 'nvidia0').write_text('')
  assert allocator.has_accelerator({}, [str(tmp_path / 'nvidia[0-9]*')], none)
  assert allocator.has_accelerator({}, [], lambda name: name == 'jax-cuda12-plugin')
  assert allocator.has_accelerator({}, [], lambda name: name == 'libtpu')
  # JAX_PLATFORMS decides when set: cpu only -> CPU, whatever the machine has.
  assert not allocator.has_accelerator({'JAX_PLATFORMS': 'cpu'},
                                       [str(tmp_path / 'nvidia[0-9]*')], lambda n: True)
  assert allocator.has_accelerator({'JAX_PLATFORMS': 'cuda,cpu'}, [], none)
  assert allocator.has_accelerator({'JAX_PLATFORMS': 'tpu'}, [], none)


def test_notebooks_and_debuggers_are_detected():
  assert allocator.being_debugged({'ipykernel': object()})
  assert allocator.being_debugged({'debugpy': object()})
  assert allocator.being_debugged({'pydevd': object()})
  old = sys.gettrace()
  try:
    sys.settrace(lambda *a: None)
    assert allocator.being_debugged({})
  finally:
    sys.settrace(old)


def test_hint_only_when_a_cpu_run_on_linux_fell_back_for_want_of_tcmalloc():
  def hint(env, active, backend, platform='linux', find=lambda: None):
    return allocator.missing_tcmalloc_hint(env, active, backend, platform, find)
  text = hint({}, 'default', 'cpu')
  assert 'apt-get install libtcmalloc-minimal4' in text and f'{allocator.ENV}=0' in text
  # Installed, but this process was not started through an entry point (a notebook):
  assert f'LD_PRELOAD={TC}' in hint({}, 'default', 'cpu', find=_found)
  assert hint({}, 'tcmalloc', 'cpu') is None                     # it is running
  assert hint({}, 'default', 'gpu') is None                      # not a CPU run
  assert hint({}, 'default', 'cpu', 'darwin') is None            # not Linux
  assert hint({allocator.ENV: '0'}, 'default', 'cpu') is None   # glibc chosen
  assert hint({'LD_PRELOAD': 'libjemalloc.so'}, 'default', 'cpu') is None


def test_hint_is_logged_once_per_process(monkeypatch):
  warnings = []
  monkeypatch.setattr(allocator.logging, 'warning', lambda fmt, *a: warnings.append(fmt % a))
  monkeypatch.setattr(allocator, 'missing_tcmalloc_hint', lambda env, active, backend: 'x')
  allocator.warn_if_missing_tcmalloc.cache_clear()
  try:
    allocator.warn_if_missing_tcmalloc('cpu')
    allocator.warn_if_missing_tcmalloc('cpu')  # train_and_evaluate inside the bench's loop
  finally:
    allocator.warn_if_missing_tcmalloc.cache_clear()
  assert warnings == ['x']


def test_find_tcmalloc(tmp_path):
  a, b = tmp_path / 'a', tmp_path / 'b'
  a.mkdir()
  b.mkdir()
  assert allocator.find_tcmalloc([str(a), str(b)]) is None
  (b / 'libtcmalloc.so.4').write_bytes(b'')
  assert allocator.find_tcmalloc([str(a), str(b)]) == str(b / 'libtcmalloc.so.4')
  (a / 'libtcmalloc_minimal.so.4').write_bytes(b'')  # The minimal build is preferred.
  assert allocator.find_tcmalloc([str(a), str(b)]) == str(a / 'libtcmalloc_minimal.so.4')


def test_active_malloc(tmp_path):
  maps = tmp_path / 'maps'
  maps.write_text('7f00-7f01 r-xp 0 08:01 1 /usr/lib/libc.so.6\n')
  assert allocator.active_malloc(str(maps)) == 'default'
  maps.write_text('7f00-7f01 r-xp 0 08:01 1 /usr/lib/libtcmalloc_minimal.so.4.5.10\n')
  assert allocator.active_malloc(str(maps)) == 'tcmalloc'
  assert allocator.active_malloc(str(tmp_path / 'none')) == 'default'


def _mapped_libm() -> str | None:
  try:
    with open('/proc/self/maps') as f:
      paths = {line.split()[-1] for line in f if '/libm' in line}
  except OSError:
    return None
  return next((p for p in sorted(paths) if os.path.isfile(p)), None)


def test_started_as():
  f = os.path.abspath(__file__)
  assert allocator.started_as(['py', '-m', 'p2p_jax.main', '--x=1'], f, 'p2p_jax.main')
  assert allocator.started_as(['py', '-u', '-X', 'dev', '-mp2p_jax.main'], f, 'p2p_jax.main')
  assert allocator.started_as(['py', '-W', 'ignore', f, '--x'], f, None)
  assert not allocator.started_as(['py', '-m', 'ipykernel_launcher', '-f', 'k.json'], f,
                                  'p2p_jax.main')  # %run inside a Jupyter kernel
  assert not allocator.started_as(['py', '-c', 'import p2p_jax'], f, 'p2p_jax.main')
  assert not allocator.started_as(['py', '/some/other.py'], f, None)
  assert not allocator.started_as(['py'], f, 'p2p_jax.main')


def _entry(tmp_path, before_restart=''):
  """A script that restarts like the entry points do, with libm (mapped anyway, so harmless)
  standing in for tcmalloc on a CPU-only machine; prints its pid and LD_PRELOAD per run."""
  lib = _mapped_libm()
  assert lib, 'no libm mapped into this process'
  script = tmp_path / 'entry.py'
  script.write_text(
      'import os, sys\nfrom p2p_jax.cpu import allocator\n'
      f'allocator.find_tcmalloc = lambda: {lib!r}\n'
      'allocator.has_accelerator = lambda env: False\n'
      'print("run", os.getpid(), os.environ.get("LD_PRELOAD", ""), flush=True)\n'
      f'{before_restart}\n'
      'allocator.restart_with_preferred_malloc(__file__)\nprint("done", flush=True)\n')
  env = dict(os.environ, PYTHONPATH=ROOT)
  for key in (allocator.ENV, allocator.APPLIED_ENV, 'LD_PRELOAD'):
    env.pop(key, None)
  return lib, script, env


def _runs(script, env):
  out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                       text=True, timeout=60, check=True).stdout.split('\n')
  assert out.count('done') == 1
  return [line.split() for line in out if line.startswith('run')]


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='LD_PRELOAD is Linux only')
def test_restart_reruns_the_same_command_once_with_the_library_preloaded(tmp_path):
  lib, script, env = _entry(tmp_path)
  runs = _runs(script, env)
  assert len(runs) == 2, runs                 # Once as started, once restarted.
  assert runs[0][1] == runs[1][1]             # exec: the same process.
  assert len(runs[0]) == 2 and runs[1][2] == lib


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='LD_PRELOAD is Linux only')
@pytest.mark.parametrize('case', ['off', 'debugger', 'notebook'])
def test_no_restart_when_off_debugged_or_in_a_notebook(tmp_path, case):
  before = {'off': '', 'debugger': 'sys.settrace(lambda *a: None)',
            'notebook': 'sys.modules["ipykernel"] = sys'}[case]
  _, script, env = _entry(tmp_path, before)
  if case == 'off':
    env[allocator.ENV] = '0'
  runs = _runs(script, env)
  assert len(runs) == 1 and len(runs[0]) == 2, runs
