"""Run the command-line entry points with tcmalloc preloaded, where it is installed.

XLA:CPU allocates each execution's temporary buffer afresh (844 MB for two 256 px train
steps at batch 4) and Eigen's contractions allocate ~33 MB workspaces per convolution.
glibc's malloc serves blocks that large with ``mmap`` and returns them with ``munmap``,
so the kernel faults in and zeroes ~0.5 GB of pages on every step (~0.3-0.5 s of CPU time
per step at batch 4, see docs/perf_notes.md). tcmalloc keeps freed blocks for reuse: on a
2-core machine the batch-4 train step ran 1.05-1.45x faster with it (two VMs), PyTorch's
0.99-1.2x.

A shared library can only replace malloc if the dynamic loader preloads it, before the
process starts, so ``python -m p2p_jax.main`` and ``python -m p2p_jax.bench`` restart
themselves once (``os.execve``, same process id, same arguments) with ``LD_PRELOAD`` set.
The environment variable ``P2P_JAX_MALLOC`` chooses: ``auto`` (default: tcmalloc if
found, else glibc's malloc), ``system`` (never restart), or the path of a malloc library
to preload. Only a process started as that command restarts: code that imports p2p_jax
(notebooks, ``%run`` in a Jupyter kernel, tests) is not affected; set ``LD_PRELOAD``
before starting the kernel there. A CPU training run or bench that ends up on glibc's
malloc this way logs a one-line note, once (``warn_if_missing_tcmalloc``). Nothing here
imports JAX or TensorFlow.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping, Sequence

from absl import logging

from p2p_jax.errors import UserError

ENV = 'P2P_JAX_MALLOC'
# Set in the restarted process's environment (to the preloaded library): never restart
# twice, and lets that process report what it runs with.
APPLIED_ENV = 'P2P_JAX_MALLOC_APPLIED'
TCMALLOC_NAMES = ('libtcmalloc_minimal.so.4', 'libtcmalloc.so.4')
# Debian/Ubuntu (libtcmalloc-minimal4 / google-perftools), Fedora/RHEL (gperftools-libs),
# and a library built from source.
SEARCH_DIRS = ('/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64',
               '/usr/lib', '/usr/local/lib')
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


def restart_env(env: Mapping[str, str], platform: str = sys.platform,
                find: Callable[[], str | None] = find_tcmalloc) -> dict[str, str] | None:
  """The environment to restart this process with, or None to run on as is.

  Raises UserError for a ``P2P_JAX_MALLOC`` that names no file."""
  choice = env.get(ENV, 'auto').strip() or 'auto'
  if choice == 'system' or env.get(APPLIED_ENV):
    return None
  if choice == 'auto':
    lib = find() if platform.startswith('linux') else None
    if lib is None:
      return None
  else:
    if not os.path.isfile(choice):
      raise UserError(f'{ENV}={choice!r}: no such file. Use auto (tcmalloc if installed), '
                      'system (the C library\'s malloc) or the path of a malloc library, '
                      'e.g. /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4.')
    if not platform.startswith('linux'):
      raise UserError(f'{ENV}={choice!r}: preloading a malloc library is only supported '
                      'on Linux; use auto or system.')
    lib = choice
  preload = [p for p in env.get('LD_PRELOAD', '').replace(' ', ':').split(':') if p]
  if lib in preload:
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
  """Replaces this process with the same command under the preferred malloc, if any.

  Call first thing in a ``__main__`` block, before threads start, with that module's
  ``__file__`` and ``__spec__.name``; returns (and changes nothing) when no restart is
  due, when the process was not started as that module, or when the restart fails."""
  if not started_as(sys.orig_argv, main_file, module):
    return
  try:
    env = restart_env(os.environ)
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
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
  """A one-line suggestion when a CPU run on Linux got glibc's malloc while
  ``P2P_JAX_MALLOC`` is ``auto``: install tcmalloc, or, where it is installed but this
  process was not started by an entry point that preloads it (a notebook, an import),
  preload it. None otherwise."""
  choice = env.get(ENV, 'auto').strip() or 'auto'
  if choice != 'auto' or active != 'default' or backend != 'cpu':
    return None
  if not platform.startswith('linux') or env.get('LD_PRELOAD'):
    return None
  why = ('glibc\'s malloc, which maps and zeroes XLA\'s large buffers afresh on every step '
         '(tcmalloc made the 256 px train step 1.05-1.45x faster in our runs)')
  lib = find()
  if lib:
    return (f'this CPU process runs on {why}: start Python with LD_PRELOAD={lib} '
            f'(python -m p2p_jax.main does so itself). {ENV}=system silences this.')
  return (f'tcmalloc is not installed, so this CPU run uses {why}: install it (Debian/Ubuntu: '
          'apt-get install libtcmalloc-minimal4, Fedora: gperftools-libs). '
          f'{ENV}=system silences this.')


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
