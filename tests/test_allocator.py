"""The entry points' restart under a preloaded malloc (p2p_jax/allocator.py)."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

from p2p_jax import allocator
from p2p_jax.errors import UserError

TC = '/opt/lib/libtcmalloc_minimal.so.4'


def _found():
  return TC


def test_auto_preloads_tcmalloc_before_what_was_preloaded():
  env = allocator.restart_env({'LD_PRELOAD': 'libfoo.so', 'HOME': '/h'}, 'linux', _found)
  assert env['LD_PRELOAD'] == f'{TC}:libfoo.so'
  assert env[allocator.APPLIED_ENV] == TC
  assert env['HOME'] == '/h'
  assert int(env['TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD']) > 2 ** 40
  env = allocator.restart_env({'TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD': '5'}, 'linux', _found)
  assert env['LD_PRELOAD'] == TC
  assert env['TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD'] == '5'  # The user's choice stands.


@pytest.mark.parametrize('env,platform,find', [
    ({}, 'linux', lambda: None),                       # auto, nothing installed
    ({}, 'darwin', _found),                            # auto, not Linux
    ({allocator.ENV: 'system'}, 'linux', _found),      # turned off
    ({allocator.APPLIED_ENV: TC}, 'linux', _found),    # already restarted once
    ({'LD_PRELOAD': f'x.so {TC}'}, 'linux', _found),   # preloaded by the user
])
def test_no_restart(env, platform, find):
  assert allocator.restart_env(env, platform, find) is None


def test_hint_only_when_a_cpu_run_on_linux_fell_back_for_want_of_tcmalloc():
  def hint(env, active, backend, platform='linux', find=lambda: None):
    return allocator.missing_tcmalloc_hint(env, active, backend, platform, find)
  text = hint({}, 'default', 'cpu')
  assert 'apt-get install libtcmalloc-minimal4' in text and f'{allocator.ENV}=system' in text
  # Installed, but this process was not started through an entry point (a notebook):
  assert f'LD_PRELOAD={TC}' in hint({}, 'default', 'cpu', find=_found)
  assert hint({}, 'tcmalloc', 'cpu') is None                     # it is running
  assert hint({}, 'default', 'gpu') is None                      # not a CPU run
  assert hint({}, 'default', 'cpu', 'darwin') is None            # not Linux
  assert hint({allocator.ENV: 'system'}, 'default', 'cpu') is None   # glibc chosen
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


def test_explicit_library(tmp_path):
  lib = tmp_path / 'libmymalloc.so'
  lib.write_bytes(b'')
  env = allocator.restart_env({allocator.ENV: str(lib)}, 'linux', lambda: None)
  assert env['LD_PRELOAD'] == str(lib)
  with pytest.raises(UserError, match='no such file'):
    allocator.restart_env({allocator.ENV: str(tmp_path / 'missing.so')}, 'linux')
  with pytest.raises(UserError, match='only supported on Linux'):
    allocator.restart_env({allocator.ENV: str(lib)}, 'darwin')


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


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='LD_PRELOAD is Linux only')
def test_restart_reruns_the_same_command_once_with_the_library_preloaded(tmp_path):
  lib = _mapped_libm()  # Harmless to preload: the interpreter maps it anyway.
  if lib is None:
    pytest.skip('no libm mapped into this process')
  script = tmp_path / 'entry.py'
  script.write_text(
      'import os\nfrom p2p_jax import allocator\n'
      'print("run", os.getpid(), os.environ.get("LD_PRELOAD", ""), flush=True)\n'
      'allocator.restart_with_preferred_malloc(__file__)\nprint("done", flush=True)\n')
  env = dict(os.environ, **{allocator.ENV: lib, 'PYTHONPATH': ROOT})
  env.pop(allocator.APPLIED_ENV, None)
  env.pop('LD_PRELOAD', None)
  out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                       text=True, timeout=60, check=True).stdout.split('\n')
  runs = [line.split() for line in out if line.startswith('run')]
  assert len(runs) == 2, out                  # Once as started, once restarted.
  assert runs[0][1] == runs[1][1]             # exec: the same process.
  assert len(runs[0]) == 2 and runs[1][2] == lib
  assert out.count('done') == 1


def test_entry_point_rejects_a_bad_choice_before_loading_anything():
  env = dict(os.environ, **{allocator.ENV: '/no/such/libmalloc.so', 'PYTHONPATH': ROOT})
  env.pop(allocator.APPLIED_ENV, None)
  proc = subprocess.run([sys.executable, '-m', 'p2p_jax.main', '--mode=summary'], env=env,
                        capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert proc.returncode == 2
  assert 'P2P_JAX_MALLOC' in proc.stderr and 'no such file' in proc.stderr
  assert 'Traceback' not in proc.stderr
