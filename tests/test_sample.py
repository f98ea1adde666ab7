"""--mode=sample: restore a checkpoint, translate, write PNGs and an HTML gallery."""

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import tiny_config
from PIL import Image

from p2p_jax import images, inference, restore, sample, train
from p2p_jax.data import pipeline
from p2p_jax.rng import make_key
from p2p_jax.errors import CheckpointError, ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  w = str(tmp_path_factory.mktemp('sample_run'))
  train.train_and_evaluate(tiny_config(num_train_steps=2), w)
  return w


def sample_config(**overrides):
  c = tiny_config()
  # Fields from the command line that must NOT override the checkpoint's model.
  c.model.ngf = 999
  c.image_size = 256
  for k, v in overrides.items():
    c.sample[k] = v
  return c


@pytest.fixture(scope='module')
def translator(workdir):
  return inference.Translator.from_workdir(workdir, config=sample_config())


def test_sample_writes_pngs_and_gallery(workdir, capsys):
  out = sample.sample(sample_config(), workdir)
  lines = capsys.readouterr().out.strip().splitlines()
  assert lines[-1] == out == os.path.join(workdir, 'translated', 'step_2')
  names = sorted(f for f in os.listdir(out) if f.endswith('.png'))
  assert len(names) == 4  # The 4 test pairs of the tiny embedded dataset.
  combined = np.asarray(Image.open(os.path.join(out, names[0])))
  assert combined.shape == (32, 3 * 32 + 2 * 2, 3)  # input | output | target.
  stem = names[0][:-4]
  for part in ('input', 'output', 'target'):
    img = Image.open(os.path.join(out, 'images', f'{stem}_{part}.png'))
    assert img.size == (32, 32)
  html = open(os.path.join(out, 'index.html')).read()
  assert f'images/{stem}_output.png' in html and '<th>target</th>' in html
  assert workdir not in html.split('<table>')[1]  # Image links are relative.
  assert 'checkpoint step</dt><dd>2<' in html and 'paper (dropout on' in html


def test_sample_at_twice_the_training_size(workdir):
  out = sample.sample(sample_config(image_size=64, max_images=2), workdir)
  assert out.endswith('step_2_64px')
  pngs = [f for f in os.listdir(os.path.join(out, 'images')) if f.endswith('_output.png')]
  assert len(pngs) == 2
  assert Image.open(os.path.join(out, 'images', pngs[0])).size == (64, 64)
  assert os.path.isfile(os.path.join(out, 'index.html'))


@pytest.mark.parametrize('size', [48, 16])
def test_sizes_the_network_cannot_take_are_refused(workdir, size):
  with pytest.raises(ConfigError, match=r'multiple of 32 and at least 32'):
    sample.sample(sample_config(image_size=size), workdir)


def test_missing_step_and_workdir_are_clear_errors(workdir, tmp_path):
  with pytest.raises(CheckpointError, match='available: \\[2\\]'):
    sample.sample(sample_config(step=7), workdir)
  with pytest.raises(CheckpointError, match='No checkpoints'):
    sample.sample(sample_config(), str(tmp_path))


def test_model_comes_from_the_checkpoint_paths_and_sample_from_the_command_line(workdir):
  cli = tiny_config()
  cli.model.ngf = 64
  cli.data.data_dir = '/elsewhere/tfds'
  cli.data.manual_dir = ''
  cli.sample.seed = 5
  config, step, channels = restore.workdir_config(cli, workdir)
  assert step == 2 and channels == (3, 3)
  assert config.model.ngf == 8 and config.image_size == 32
  assert config.data.data_dir == '/elsewhere/tfds'
  assert config.data.direction == 'BtoA' and config.sample.seed == 5
  # No command-line config at all: the checkpoint's own settings, default sample section.
  config, _, _ = restore.workdir_config(None, workdir)
  assert config.model.ngf == 8 and config.sample.paper_mode is True


def _inputs(n=2, size=32, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


def test_dropout_keys_are_the_projects_keys():
  import jax
  k = inference.sample_key(3, 1, 2)
  assert jax.random.key_impl(k) == jax.random.key_impl(make_key(0))
  assert (jax.random.key_data(k) ==
          jax.random.key_data(jax.random.fold_in(jax.random.fold_in(make_key(3), 1), 2))).all()


def test_same_checkpoint_and_seed_reproduce_the_samples(workdir, translator):
  x = _inputs()
  a = translator.translate(x, index=0)
  b = inference.Translator.from_workdir(workdir, seed=0).translate(x, index=0)
  np.testing.assert_array_equal(a, b)
  c = inference.Translator.from_workdir(workdir, seed=1).translate(x, index=0)
  assert np.abs(a - c).max() > 1e-4  # Another seed: other dropout noise.
  # Whole runs too: the same files, byte for byte.
  o1 = sample.sample(sample_config(output_dir=os.path.join(workdir, 'r1'), max_images=2),
                     workdir)
  o2 = sample.sample(sample_config(output_dir=os.path.join(workdir, 'r2'), max_images=2),
                     workdir)
  for f in sorted(os.listdir(os.path.join(o1, 'images'))):
    assert (open(os.path.join(o1, 'images', f), 'rb').read()
            == open(os.path.join(o2, 'images', f), 'rb').read()), f


def test_paper_mode_and_conventional_mode_differ_as_described(workdir, translator):
  x = _inputs(3)
  conv0 = inference.Translator(translator.restored, paper_mode=False, seed=0)
  conv1 = inference.Translator(translator.restored, paper_mode=False, seed=1)
  # Conventional: no dropout noise (seed irrelevant), running averages (an image's output
  # does not depend on the rest of its batch).
  np.testing.assert_array_equal(conv0.translate(x), conv1.translate(x))
  np.testing.assert_allclose(conv0.translate(x)[:1], conv0.translate(x[:1]), atol=1e-5)
  # Paper: dropout noise (seed matters) and the batch's own statistics (the rest of the
  # batch changes an image's output).
  paper1 = inference.Translator(translator.restored, paper_mode=True, seed=1)
  assert np.abs(translator.translate(x) - paper1.translate(x)).max() > 1e-4
  other = x.copy()
  other[1:] = _inputs(2, seed=9)  # Same first image and shapes (so same dropout masks).
  assert np.abs(translator.translate(x)[0] - translator.translate(other)[0]).max() > 1e-4
  np.testing.assert_allclose(conv0.translate(x)[0], conv0.translate(other)[0], atol=1e-5)
  assert np.abs(translator.translate(x) - conv0.translate(x)).max() > 1e-3


def test_several_samples_show_the_dropout_spread(workdir):
  out = sample.sample(sample_config(num_samples=3, max_images=1), workdir)
  imgs = sorted(f for f in os.listdir(os.path.join(out, 'images')) if '_output_' in f)
  assert [f.rsplit('_', 1)[1] for f in imgs] == ['1.png', '2.png', '3.png']
  arrays = [np.asarray(Image.open(os.path.join(out, 'images', f)), np.int32) for f in imgs]
  assert np.abs(arrays[0] - arrays[1]).max() > 0
  assert '<th>output 3</th>' in open(os.path.join(out, 'index.html')).read()


def test_a_folder_of_images(workdir, tmp_path):
  d = tmp_path / 'inputs'
  (d / 'sub').mkdir(parents=True)
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 255, (40, 60, 3), np.uint8)).save(d / 'wide.png')
  Image.fromarray(rng.integers(0, 255, (20, 20), np.uint8)).save(d / 'sub' / 'gray.jpg')
  (d / 'notes.txt').write_text('not an image')
  out = sample.sample(sample_config(input_dir=str(d)), workdir)
  assert out.endswith('step_2_inputs')
  files = sorted(os.listdir(os.path.join(out, 'images')))
  assert files == ['sub__gray_input.png', 'sub__gray_output.png', 'wide_input.png',
                   'wide_output.png']
  assert Image.open(os.path.join(out, 'images', 'wide_output.png')).size == (32, 32)
  # The input is resized as training data is (bicubic; see test_preprocess).
  np.testing.assert_array_equal(
      np.asarray(Image.open(os.path.join(out, 'images', 'wide_input.png'))),
      images.to_uint8(pipeline.image_input(d / 'wide.png', 32, 3)))
  html = open(os.path.join(out, 'index.html')).read()
  assert '<th>target</th>' not in html and 'sub/gray' in html


def test_command_line_needs_only_the_workdir(workdir):
  env = dict(os.environ)
  env.pop('XLA_FLAGS', None)  # One CPU device, as a user has (conftest fakes two).
  out = os.path.join(workdir, 'cli')
  r = subprocess.run([sys.executable, '-m', 'p2p_jax.main', '--mode=sample',
                      f'--workdir={workdir}', '--config.sample.max_images=1',
                      f'--config.sample.output_dir={out}'],
                     cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  assert r.stdout.strip().splitlines()[-1] == out
  assert os.path.isfile(os.path.join(out, 'index.html'))
