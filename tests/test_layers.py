"""The package's layering rules, checked on its source with ``ast`` (no imports needed).

1. No module uses a ``_private`` name of another p2p_jax module (``from p2p_jax.x import
   _y``, or ``x._y`` where ``x`` is an imported p2p_jax module).
2. Error classes come from ``p2p_jax.errors`` only (no ``from p2p_jax.x import XError`` or
   ``x.XError`` with another p2p_jax module ``x``).
"""

import ast
import os
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / 'p2p_jax'

# Uses in modules outside this change's scope (train_step.py, parallel.py), still to be
# fixed there: delete an entry when its use is gone.
KNOWN_PRIVATE = set()
KNOWN_ERROR_REEXPORTS = set()


def _modules():
  for path in sorted(PACKAGE.rglob('*.py')):
    yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text(), str(path))


def _private(name: str) -> bool:
  return name.startswith('_') and not (name.startswith('__') and name.endswith('__'))


def _scan(rel: str, tree: ast.AST) -> tuple[set, set]:
  """(private uses, error imports from elsewhere) of one module."""
  aliases = {}  # Local name -> p2p_jax module it is bound to.
  private, errors = set(), set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for a in node.names:
        if a.name.startswith('p2p_jax'):  # `import p2p_jax.x` binds `p2p_jax`.
          aliases[a.asname or 'p2p_jax'] = a.name if a.asname else 'p2p_jax'
    elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('p2p_jax'):
      for a in node.names:
        if _private(a.name):
          private.add(f'{node.module}.{a.name}')
        elif a.name.endswith('Error') and node.module != 'p2p_jax.errors':
          errors.add(f'{node.module}.{a.name}')
        else:  # `from p2p_jax.data import pipeline` binds a module (or a plain name).
          aliases[a.asname or a.name] = f'{node.module}.{a.name}'
  for node in ast.walk(tree):
    if isinstance(node, ast.Attribute):
      base = node.value
      parts = []
      while isinstance(base, ast.Attribute):
        parts.append(base.attr)
        base = base.value
      if isinstance(base, ast.Name) and base.id in aliases:
        target = '.'.join([aliases[base.id]] + parts[::-1])
        if _private(node.attr):
          private.add(f'{base.id}.{node.attr}' if not parts else f'{target}.{node.attr}')
        elif node.attr.endswith('Error') and target != 'p2p_jax.errors':
          errors.add(f'{target}.{node.attr}')
  return private, errors


def _all():
  private, errors = set(), set()
  for rel, tree in _modules():
    p, e = _scan(rel, tree)
    private |= {(rel, x) for x in p}
    errors |= {(rel, x) for x in e}
  return private, errors


def test_the_scan_finds_what_it_looks_for():
  src = ('from p2p_jax import sample as s\nimport p2p_jax.data.pipeline\n'
         'from p2p_jax.data.sources import DataError, _hidden\n'
         'from p2p_jax.data import sources\n'
         's._split(); p2p_jax.data.pipeline._x; sources.DataError; s.__name__; s.ok\n')
  private, errors = _scan('x.py', ast.parse(src))
  assert private == {'p2p_jax.data.sources._hidden', 's._split',
                     'p2p_jax.data.pipeline._x'}
  assert errors == {'p2p_jax.data.sources.DataError'}
  assert _scan('y.py', ast.parse('from p2p_jax.errors import DataError\n'
                                 'from p2p_jax import errors\nerrors.ConfigError\n')) == (
                                     set(), set())


def test_no_module_uses_a_private_name_of_another():
  private, _ = _all()
  assert private - KNOWN_PRIVATE == set()


def test_error_classes_come_from_errors_only():
  _, errors = _all()
  assert errors - KNOWN_ERROR_REEXPORTS == set()


@pytest.mark.parametrize('module', ['checkpoints', 'data/sources', 'train'])
def test_modules_that_used_to_re_export_errors_no_longer_say_so(module):
  text = (PACKAGE / f'{module}.py').read_text()
  assert 're-exported' not in text


def test_library_modules_do_not_import_modes():
  """Modes (train, sample, evaluate, train_segmenter, main) call libraries, not each other;
  only main dispatches to them."""
  modes = {'p2p_jax.train', 'p2p_jax.sample', 'p2p_jax.evaluate', 'p2p_jax.train_segmenter',
           'p2p_jax.main'}
  bad = []
  for rel, tree in _modules():
    if rel in ('main.py', 'bench.py'):  # The dispatcher; the bench times a training run.
      continue
    for node in ast.walk(tree):
      names = []
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module:
        names = [node.module] + [f'{node.module}.{a.name}' for a in node.names]
      bad += [(rel, n) for n in names if n in modes and os.path.splitext(rel)[0] !=
              n.split('.', 1)[1]]
  assert bad == []


def test_one_list_of_image_extensions():
  """Only p2p_jax/data/image_files.py spells out the image extensions."""
  owners = sorted(rel for rel, tree in _modules()
                  if any(isinstance(n, ast.Constant) and n.value == '.webp'
                         for n in ast.walk(tree)))
  assert owners == ['data/image_files.py']
