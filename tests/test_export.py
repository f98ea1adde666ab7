"""--mode=export: the generator alone, reloaded in a fresh process without p2p_jax."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import tiny_config

from p2p_jax import export, exported, inference
from p2p_jax.checkpoints import Checkpointer
from p2p_jax.data import sources
from p2p_jax.errors import CheckpointError
from p2p_jax.rng import make_key
from p2p_jax.pix2pix import create_train_state, make_networks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def save_checkpoint(workdir, config, step=3):
  """A checkpoint with random weights and non-trivial BatchNorm running statistics, so the
  conventional mode differs from the paper mode (no training compile: fast)."""
  ch = sources.io_channels(config)
  nets = make_networks(config, ch.target)
  s = config.image_size
  state = create_train_state(nets, make_key(0), (s, s, ch.input), ch.target)
  rng = np.random.default_rng(0)
  stats = jax.tree_util.tree_map_with_path(
      lambda p, a: (rng.uniform(0.5, 1.5, a.shape) if 'var' in jax.tree_util.keystr(p)
                    else rng.normal(0, 0.2, a.shape)).astype(np.float32), state.g_batch_stats)
  state = state.replace(g_batch_stats=stats)
  ckpt = Checkpointer(workdir)
  ckpt.save(step, state, config, (ch.input, ch.target))
  ckpt.wait()
  ckpt.close()


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('export_run'))
  save_checkpoint(workdir, tiny_config())
  out = export.export(tiny_config(), workdir)
  return workdir, out


def fresh_process(code, export_dir, cwd):
  """Runs ``code`` in a new interpreter that can import only the copied loader (not
  p2p_jax), after asserting that neither p2p_jax nor TensorFlow got imported."""
  prog = (f'import sys; sys.path[:0] = [{export_dir!r}]\n'
          'import exported, numpy as np\n' + code +
          "\nassert not [m for m in sys.modules if m.split('.')[0] in "
          "('p2p_jax', 'tensorflow', 'flax')], 'loader imported the training code'\n")
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  env.pop('PYTHONPATH', None)
  r = subprocess.run([sys.executable, '-c', prog], cwd=cwd, env=env, capture_output=True,
                     text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  return r


def test_export_writes_generator_only(run):
  workdir, out = run
  assert out == os.path.join(workdir, 'export', 'step_3')
  assert sorted(os.listdir(out)) == sorted([
      'export.json', 'exported.py', 'generator.npz', 'generate_conventional.jaxexport',
      'generate_paper.jaxexport'])
  meta = json.load(open(os.path.join(out, 'export.json')))
  assert meta['step'] == 3 and meta['image_size'] == 32 and meta['channels'] == [3, 3]
  assert set(meta['platforms']) >= {'cpu', 'cuda'}
  restored = inference.Translator.from_workdir(workdir).restored
  with np.load(os.path.join(out, 'generator.npz')) as npz:
    names = set(npz.files)
    assert {n.split('/')[0] for n in names} == {'params', 'batch_stats'}  # No opt, no D.
    want = export.flatten({'params': restored.params, 'batch_stats': restored.batch_stats})
    assert names == set(want)
    for k, v in want.items():
      np.testing.assert_array_equal(npz[k], v)


def test_fresh_process_matches_translator(run, tmp_path):
  workdir, out = run
  x = np.random.default_rng(1).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
  np.save(tmp_path / 'x.npy', x)
  fresh_process(
      'x = np.load("x.npy")\n'
      'g = exported.load(%r)\n'
      'p = exported.load(%r, "paper", seed=5)\n'
      'np.save("conv3.npy", g(x)); np.save("conv1.npy", g(x[:1]))\n'
      'np.save("paper.npy", p(x, 2, 1))\n' % (out, out), out, str(tmp_path))

  conventional = inference.Translator.from_workdir(workdir, paper_mode=False)
  paper = inference.Translator.from_workdir(workdir, paper_mode=True, seed=5)
  ref = conventional.translate(x)
  np.testing.assert_allclose(np.load(tmp_path / 'conv3.npy'), ref, atol=1e-5)
  np.testing.assert_allclose(np.load(tmp_path / 'conv1.npy'), ref[:1], atol=1e-5)
  np.testing.assert_allclose(np.load(tmp_path / 'paper.npy'), paper.translate(x, 2, 1),
                             atol=1e-5)
  # The modes really differ here (non-trivial running statistics), so the check has teeth.
  assert np.abs(ref - paper.translate(x, 2, 1)).max() > 1e-2


def test_loader_cli_translates_an_image_file(run, tmp_path):
  workdir, out = run
  img = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
  from PIL import Image
  Image.fromarray(img).save(tmp_path / 'in.png')
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  r = subprocess.run([sys.executable, os.path.join(out, 'exported.py'), out, 'in.png',
                      'out.png'], cwd=tmp_path, env=env, capture_output=True, text=True,
                     timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  got = np.asarray(Image.open(tmp_path / 'out.png'))
  translator = inference.Translator.from_workdir(workdir, paper_mode=False)
  want = exported.to_uint8(translator.translate(img / 127.5 - 1.0)[0])
  assert got.shape == (32, 32, 3)
  assert np.abs(got.astype(int) - want).max() <= 1


def test_loader_rejects_wrong_size(run):
  _, out = run
  g = exported.load(out)
  with pytest.raises(ValueError, match='32 px'):
    g(np.zeros((1, 64, 64, 3), np.float32))


def test_export_without_checkpoint_is_a_clear_error(tmp_path):
  with pytest.raises(CheckpointError, match='No checkpoints'):
    export.export(tiny_config(), str(tmp_path))
  r = subprocess.run([sys.executable, '-m', 'p2p_jax.main', '--mode=export',
                      f'--workdir={tmp_path}'], cwd=ROOT, capture_output=True, text=True,
                     timeout=300)
  assert r.returncode == 1
  assert 'error: No checkpoints' in r.stderr and 'Traceback' not in r.stderr
