"""tcmalloc for CPU runs of ``python -m p2p_jax.main`` / ``python -m p2p_jax.bench``.

What it buys: XLA:CPU (jaxlib 0.10) allocates each step's large temporary buffers afresh;
glibc's malloc maps and unmaps blocks that large, so the kernel zeroes fresh pages on every
step, while tcmalloc reuses them. The CPU train step runs noticeably faster with tcmalloc
at batch 4 (``docs/performance.md``). A malloc can only be replaced before the process
starts, so those two entry points, and nothing else, restart themselves once
(``os.execve``: same process id, same arguments) with tcmalloc in ``LD_PRELOAD``, when all
of these hold:

* tcmalloc is installed (Debian/Ubuntu: ``apt-get install libtcmalloc-minimal4``) and the
  OS is Linux;
* the machine has no accelerator (no GPU/TPU device or JAX plugin, ``JAX_PLATFORMS`` unset
  or ``cpu``): the restart is only for the CPU;
* the interpreter was started as that entry point (not a notebook, ``%run``, ``-c`` or
  an import) and no debugger is attached;
* ``P2P_JAX_TCMALLOC`` is not ``0``: the one switch, ``P2P_JAX_TCMALLOC=0`` turns this off.

Nothing here imports JAX or TensorFlow.
"""

from __future__ import annotations

import functools
import glob
import importlib.metadata
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from absl import logging

ENV = 'P2P_JAX_TCMALLOC'
# Set in the restarted process's environment (to the preloaded library): never restart
# twice, and lets that process report what it runs with.
APPLIED_ENV = 'P2P_JAX_TCMALLOC_APPLIED'
TCMALLOC_NAMES = ('libtcmalloc_minimal.so.4', 'libtcmalloc.so.4')
# Debian/Ubuntu (libtcmalloc-minimal4 / google-perftools), Fedora/RHEL (gperftools-libs),
# and a library built from source.
SEARCH_DIRS = ('/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64',
               '/usr/lib', '/usr/local/lib')
# Device files of NVIDIA GPUs, TPUs (/dev/accel*, /dev/vfio on newer TPU VMs) and AMD GPUs.
ACCELERATOR_DEVICES = ('/dev/nvidia[0-9]*', '/dev/accel[0-9]*', '/dev/vfio/[0-9]*', '/dev/kfd')
# JAX's accelerator plugins and TPU runtime.
ACCELERATOR_PACKAGES = ('jax-cuda12-plugin', 'jax-cuda13-plugin', 'libtpu', 'libtpu-nightly',
                        'jax-rocm60-plugin', 'jax-rocm7-plugin')
# tcmalloc prints 'tcmalloc: large alloc ...' for every block over 1 GB by default, which
# XLA's temporary buffer exceeds at larger batches. Raised unless the user set it.
_QUIET = {'TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD': str(1 << 42)}


def find_tcmalloc(dirs: Sequence[str] = SEARCH_DIRS) -> str | None:
  """The path of an installed tcmalloc, or None."""
  for name in TCMALLOC_NAMES:
    for d in dirs:
      path = os.path.join(d, name)
      if os.path.isfile(path):
        return path
  return None


def _installed(name: str) -> bool:
  try:
    importlib.metadata.version(name)
    return True
  except importlib.metadata.PackageNotFoundError:
    return False


def has_accelerator(env: Mapping[str, str],
                    device_patterns: Sequence[str] = ACCELERATOR_DEVICES,
                    installed: Callable[[str], bool] = _installed) -> bool:
  """Whether JAX may run on something other than the CPU here (without importing JAX):
  ``JAX_PLATFORMS`` names another platform, or it is unset and an accelerator's device
  file or JAX plugin exists."""
  platforms = [p.strip().lower() for p in env.get('JAX_PLATFORMS', '').split(',') if p.strip()]
  if platforms:
    return any(p != 'cpu' for p in platforms)
  if any(glob.glob(pattern) for pattern in device_patterns):
    return True
  return any(installed(name) for name in ACCELERATOR_PACKAGES)


def being_debugged(modules: Mapping[str, object] | None = None) -> bool:
  """Whether a debugger, or an interactive kernel, is attached to this interpreter."""
  modules = sys.modules if modules is None else modules
  if sys.gettrace() is not None:
    return True
  monitoring = getattr(sys, 'monitoring', None)  # Python 3.12+ debuggers.
  if monitoring is not None and monitoring.get_tool(monitoring.DEBUGGER_ID) is not None:
    return True
  return any(m in modules for m in ('pydevd', 'debugpy', 'ipykernel', 'IPython'))


def restart_env(env: Mapping[str, str], platform: str = sys.platform,
                find: Callable[[], str | None] | None = None,
                accelerator: Callable[[Mapping[str, str]], bool] | None = None
                ) -> dict[str, str] | None:
  """The environment to restart this process with (tcmalloc preloaded), or None to run on
  as is (see the module docstring for when). ``find`` / ``accelerator`` default to
  ``find_tcmalloc`` / ``has_accelerator``."""
  if env.get(ENV, '').strip() == '0' or env.get(APPLIED_ENV):
    return None
  if not platform.startswith('linux'):
    return None
  lib = (find or find_tcmalloc)()
  preload = [p for p in env.get('LD_PRELOAD', '').replace(' ', ':').split(':') if p]
  if lib is None or lib in preload or (accelerator or has_accelerator)(env):
    return None
  new = dict(env)
  new['LD_PRELOAD'] = ':'.join([lib] + preload)
  new[APPLIED_ENV] = lib
  for key, value in _QUIET.items():
    new.setdefault(key, value)
  return new


def started_as(orig_argv: Sequence[str], main_file: str, module: str | None) -> bool:
  """Whether the interpreter's command line ran ``main_file`` (``python path/to/it.py``)
  or ``module`` (``python -m module``), rather than, say, a Jupyter kernel executing it
  with ``%run``: only then is re-running that command line the same program."""
  args = list(orig_argv[1:])
  i = 0
  while i < len(args):
    a = args[i]
    if a in ('-W', '-X', '--check-hash-based-pycs'):
      i += 2
      continue
    if a == '-m':
      return module is not None and i + 1 < len(args) and args[i + 1] == module
    if a.startswith('-m'):
      return module is not None and a[2:] == module
    if a.startswith('-c') or a == '-':
      return False
    if a.startswith('-'):
      i += 1
      continue
    try:
      return os.path.samefile(a, main_file)
    except OSError:
      return False
  return False


def restart_with_preferred_malloc(main_file: str, module: str | None = None) -> None:
  """Replaces this process with the same command under tcmalloc when the module docstring's
  conditions hold. Call first thing in a ``__main__`` block, before threads start, with
  that module's ``__file__`` and ``__spec__.name``; otherwise returns, changing nothing
  (also when the restart fails)."""
  if not started_as(sys.orig_argv, main_file, module) or being_debugged():
    return
  env = restart_env(os.environ)
  if env is None:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  try:
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
  except OSError as e:  # Run on with the C library's malloc rather than not at all.
    print(f'warning: could not restart with {env[APPLIED_ENV]} preloaded ({e}); '
          'running with the default malloc', file=sys.stderr)


def missing_tcmalloc_hint(env: Mapping[str, str], active: str, backend: str,
                          platform: str = sys.platform,
                          find: Callable[[], str | None] = find_tcmalloc) -> str | None:
  """A one-line suggestion when a CPU run on Linux got glibc's malloc: install tcmalloc,
  or, where it is installed but this process was not started by an entry point that
  preloads it (a notebook, an import), preload it. None otherwise."""
  if env.get(ENV, '').strip() == '0' or active != 'default' or backend != 'cpu':
    return None
  if not platform.startswith('linux') or env.get('LD_PRELOAD'):
    return None
  why = 'glibc\'s malloc, which maps and zeroes XLA\'s large buffers afresh on every step'
  lib = find()
  if lib:
    return (f'this CPU process runs on {why}: start Python with LD_PRELOAD={lib} '
            f'(python -m p2p_jax.main does so itself). {ENV}=0 silences this.')
  return (f'tcmalloc is not installed, so this CPU run uses {why}: install it (Debian/Ubuntu: '
          'apt-get install libtcmalloc-minimal4, Fedora: gperftools-libs) for a faster '
          f'step. {ENV}=0 silences this.')


@functools.lru_cache(maxsize=None)
def warn_if_missing_tcmalloc(backend: str) -> None:
  """Logs ``missing_tcmalloc_hint`` as a warning, once per process: the bench's loop
  mode runs ``train_and_evaluate``, and both call this."""
  hint = missing_tcmalloc_hint(os.environ, active_malloc(), backend)
  if hint:
    logging.warning('%s', hint)


def active_malloc(maps_path: str = '/proc/self/maps') -> str:
  """'tcmalloc', 'jemalloc' or 'mimalloc' when that library is mapped into this process,
  else 'default' (glibc's malloc on Linux)."""
  try:
    with open(maps_path) as f:
      maps = f.read()
  except OSError:
    return 'default'
  for name in ('tcmalloc', 'jemalloc', 'mimalloc'):
    if f'lib{name}' in maps:
      return name
  return 'default'
