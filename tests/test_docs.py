"""The README's and docs/'s commands name real modes, flags, configs and config fields, and
their relative links resolve (no training: the commands are parsed, not run)."""

import ast
import glob
import importlib.util
import os
import re
import shlex

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, 'README.md')] + sorted(glob.glob(os.path.join(ROOT, 'docs', '*.md')))
FIELD = re.compile(r'--config\.([a-z_][a-z0-9_.]*)')


def _read(path):
  with open(path, encoding='utf-8') as f:
    return f.read()


def _config(path, _cache={}):  # noqa: B006 (a deliberate per-process cache)
  if path not in _cache:
    spec = importlib.util.spec_from_file_location(f'_docs_cfg_{len(_cache)}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _cache[path] = module.get_config()
  return _cache[path]


def _has_field(config, dotted):
  node = config
  for part in dotted.split('.'):
    if not hasattr(node, 'keys') or part not in node:
      return False
    node = node[part]
  return True


def _commands(text):
  """Lines of the bash code blocks that run p2p_jax, continuations joined, comments cut."""
  blocks, block, lang = [], None, None
  for line in text.splitlines():
    if line.startswith('```'):
      if block is None:
        block, lang = [], line[3:].strip()
      else:
        if lang in ('bash', 'sh', ''):
          blocks.append('\n'.join(block))
        block = None
    elif block is not None:
      block.append(line)
  for b in blocks:
    for line in b.replace('\\\n', ' ').splitlines():
      line = line.split(' #')[0].strip()
      if 'python -m p2p_jax.' in line:
        yield line


def _defined_flags(module_file):
  return set(re.findall(r"DEFINE_\w+\(\s*'(\w+)'", _read(module_file)))


def _modes():
  """main.MODES, read from the source: importing main beside bench would define the
  absl flag --config twice in one test process."""
  tree = ast.parse(_read(os.path.join(ROOT, 'p2p_jax', 'main.py')))
  for node in tree.body:
    if isinstance(node, ast.Assign) and any(getattr(t, 'id', '') == 'MODES' for t in node.targets):
      return ast.literal_eval(node.value)
  raise AssertionError('p2p_jax/main.py defines no MODES')


@pytest.mark.parametrize('doc', DOCS, ids=os.path.basename)
def test_commands_use_real_modes_flags_configs_and_fields(doc):
  modes = _modes()
  checked = 0
  for line in _commands(_read(doc)):
    for cmd in line.split('&&'):
      words = shlex.split(cmd)
      if 'p2p_jax.main' not in words and 'p2p_jax.bench' not in words:
        continue
      module = words[words.index('-m') + 1]
      flags = _defined_flags(os.path.join(ROOT, *module.split('.')) + '.py')
      config = os.path.join(ROOT, 'configs', 'default.py')
      for w in words[words.index('-m') + 2:]:
        if not w.startswith('--') or w.startswith('--config.'):
          continue
        name, _, value = w[2:].partition('=')
        known = name in flags or (name.startswith('no') and name[2:] in flags)
        assert known, f'{doc}: {module} has no flag --{name}: {line}'
        if name == 'mode':
          assert value in modes, f'{doc}: unknown mode {value!r}: {line}'
        if name == 'config' and re.fullmatch(r'configs/[a-z0-9_]+\.py', value):
          config = os.path.join(ROOT, value)
          assert os.path.isfile(config), f'{doc}: no such config {value}: {line}'
      for field in FIELD.findall(cmd):
        field = field.rstrip('.')
        assert _has_field(_config(config), field), (
            f'{doc}: {os.path.relpath(config, ROOT)} has no field {field}: {line}')
      checked += 1
  if os.path.basename(doc) == 'README.md':
    assert checked >= 10, 'README: its commands were not found'


@pytest.mark.parametrize('doc', DOCS, ids=os.path.basename)
def test_config_fields_in_prose_exist_in_some_config(doc):
  configs = [_config(p) for p in sorted(glob.glob(os.path.join(ROOT, 'configs', '*.py')))]
  for field in {f.rstrip('.') for f in FIELD.findall(_read(doc))}:
    assert any(_has_field(c, field) for c in configs), f'{doc}: no config has {field}'


@pytest.mark.parametrize('doc', DOCS, ids=os.path.basename)
def test_relative_links_resolve(doc):
  text = _read(doc)
  anchors = {re.sub(r'[^a-z0-9 _-]', '', h.strip().lower()).replace(' ', '-')
             for h in re.findall(r'^#+ (.*)$', text, re.M)}
  for target in re.findall(r'\]\(([^)\s]+)\)', text):
    if re.match(r'[a-z]+:', target):
      continue
    path, _, anchor = target.partition('#')
    if path:
      assert os.path.exists(os.path.join(os.path.dirname(doc), path)), f'{doc}: {target}'
    elif anchor:
      assert anchor in anchors, f'{doc}: no heading for #{anchor}'


def test_readme_test_command_is_what_ci_runs():
  ci = [line.strip() for line in _read(os.path.join(ROOT, '.ci', 'run')).splitlines()]
  command = next(line for line in ci if line.startswith('python -m pytest'))
  assert command in _read(os.path.join(ROOT, 'README.md'))
