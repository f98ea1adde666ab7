"""setup.cfg tells the truth: the installed versions meet the declared floors, the jax floor
covers the JAX APIs the code uses, TensorFlow is not a hard requirement, and the Colab
notebook installs from a checkout or the installed package without placeholders."""

import configparser
import importlib.metadata
import inspect
import json
import os
import subprocess
import sys

import jax
from conftest import ROOT
from jax import lax
from packaging.requirements import Requirement
from packaging.version import Version

# JAX APIs the package relies on, and the first jax release that has each.
JAX_APIS = {
    'jax.shard_map(check_vma=...)': '0.6.1',  # parallel.DataParallel
    'jax.lax.axis_size': '0.6.1',              # train_step._pmean
}


def _setup_cfg():
  cfg = configparser.ConfigParser()
  cfg.read(os.path.join(ROOT, 'setup.cfg'))
  return cfg


def _requirements(text):
  return [Requirement(line) for line in text.strip().splitlines()
          if line.strip() and not line.strip().startswith('#')]


def test_installed_versions_meet_the_declared_floors():
  for req in _requirements(_setup_cfg()['options']['install_requires']):
    if req.marker is not None and not req.marker.evaluate():
      continue
    installed = importlib.metadata.version(req.name)
    assert req.specifier.contains(installed, prereleases=True), (str(req), installed)


def test_the_jax_floor_covers_the_apis_used():
  assert 'check_vma' in inspect.signature(jax.shard_map).parameters
  assert callable(lax.axis_size)
  (jax_req,) = [r for r in _requirements(_setup_cfg()['options']['install_requires'])
                if r.name == 'jax']
  floor = min(Version(s.version) for s in jax_req.specifier if s.operator == '>=')
  for api, first in JAX_APIS.items():
    assert floor >= Version(first), f'{api} needs jax>={first}; setup.cfg says {jax_req}'
  for extra in ('cuda', 'tpu'):
    (req,) = _requirements(_setup_cfg()['options.extras_require'][extra])
    assert req.name == 'jax' and req.specifier == jax_req.specifier, (extra, str(req))
  assert _requirements(_setup_cfg()['options.extras_require']['cuda'])[0].extras == {'cuda12'}
  assert _requirements(_setup_cfg()['options.extras_require']['tpu'])[0].extras == {'tpu'}


def test_tensorflow_is_only_an_extra():
  """A machine with `tensorflow` (Colab) must not get `tensorflow-cpu` beside it."""
  cfg = _setup_cfg()
  names = {r.name for r in _requirements(cfg['options']['install_requires'])}
  assert not names & {'tensorflow', 'tensorflow-cpu', 'tf-nightly'}, names
  extra = {r.name for r in _requirements(cfg['options.extras_require']['tensorflow'])}
  assert extra == {'tensorflow', 'tensorflow-cpu'}


def test_missing_tensorflow_is_a_clear_error(tmp_path):
  """Without TensorFlow, the data package names the install command (a UserError)."""
  (tmp_path / 'tensorflow.py').write_text('raise ImportError("No module named tensorflow")\n')
  code = ('import sys\nfrom p2p_jax.errors import DependencyError\n'
          'try:\n  import p2p_jax.data\nexcept DependencyError as e:\n  print("ERR", e)\n')
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))
  out = subprocess.run([sys.executable, '-c', code], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=120).stdout
  assert out.startswith('ERR') and 'pip install tensorflow-cpu' in out, out


def _install_cell():
  with open(os.path.join(ROOT, 'launch', 'colab_sample.ipynb')) as f:
    nb = json.load(f)
  text = json.dumps(nb)
  assert 'YOUR_ACCOUNT' not in text
  (cell,) = [c for c in nb['cells'] if c['cell_type'] == 'code'
             and "REPO_URL = ''" in ''.join(c['source'])]
  return ''.join(cell['source'])


def test_colab_install_cell_uses_the_installed_package_or_the_checkout(tmp_path):
  cell = _install_cell()
  env = dict(os.environ, PYTHONPATH=ROOT)
  out = subprocess.run([sys.executable, '-c', cell], cwd=os.path.join(ROOT, 'launch'), env=env,
                       capture_output=True, text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
  assert 'p2p_jax from' in out.stdout
  # The checkout is found from the notebook's folder and from the root; not elsewhere.
  ns = {}
  exec(cell.split('if importlib.util.find_spec')[0], ns)  # Definitions only.
  cwd = os.getcwd()
  try:
    for d, want in ((os.path.join(ROOT, 'launch'), ROOT), (ROOT, ROOT), (str(tmp_path), None)):
      os.chdir(d)
      assert ns['checkout_dir']() == (os.path.abspath(want) if want else None), d
  finally:
    os.chdir(cwd)
