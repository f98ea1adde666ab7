"""CycleGAN checkpoints through --mode=sample and --mode=evaluate: both generators restored
alone (a 2-device run's checkpoint on any device count), rows input | translation |
reconstruction, the FCN-score both ways on labels <-> photo data, cycle L1."""

import json
import os

import jax
import ml_collections
import numpy as np
import pytest
from conftest import tiny_cyclegan_config
from PIL import Image

from p2p_jax import cyclegan, evaluate, gan, images, inference, metrics, restore, sample, train
from p2p_jax.data import model_data
from p2p_jax.errors import ConfigError


def _cli(cache_dir='', **kw):
  """The command line's config: only its sample / fcn sections and paths are read."""
  c = tiny_cyclegan_config(**kw)
  c.fcn = ml_collections.ConfigDict({'num_steps': 2, 'lr': 5e-3, 'features': [8, 16],
                                     'batch_size': 4, 'seed': 0, 'cache_dir': cache_dir})
  return c


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """4 steps on 2 devices (pools [2, 50, ...] in the checkpoint): (workdir, final state)."""
  workdir = str(tmp_path_factory.mktemp('cg_sample'))
  c = tiny_cyclegan_config(**{'batch_size': 2, 'num_train_steps': 4,
                              'checkpoint_every_steps': 4})
  return workdir, train.train_and_evaluate(c, workdir), c


def _nets(c):
  return cyclegan.make_networks(c, 3, 3)


def test_generators_restored_alone_equal_the_trained_ones(trained):
  workdir, state, _ = trained
  gens = restore.restore_generators(_cli(), workdir)
  assert set(gens) == {'AtoB', 'BtoA'}
  for name, key in (('AtoB', 'g_a'), ('BtoA', 'g_b')):
    for x, y in zip(jax.tree.leaves(gens[name].params), jax.tree.leaves(state.g_params[key]),
                    strict=True):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  assert gens['AtoB'].inverse is gens['BtoA'] and gens['BtoA'].inverse is gens['AtoB']
  assert restore.restore_generator(_cli(), workdir, direction='BtoA').name == 'BtoA'
  with pytest.raises(ConfigError, match='direction'):
    restore.restore_generator(_cli(), workdir, direction='AtoA')


def test_translator_matches_the_training_translate_fn(trained):
  workdir, state, c = trained
  x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  for direction in ('AtoB', 'BtoA'):
    want, _ = cyclegan.make_translate_fn(_nets(c), direction)(state.g_params, x)
    got = inference.Translator.from_workdir(workdir, direction=direction).translate(x)
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-5)


def test_sample_both_directions_rows_translation_and_reconstruction(trained, tmp_path):
  workdir, state, c = trained
  out = sample.sample(_cli(**{'sample.output_dir': str(tmp_path / 'g')}), workdir)
  page = open(os.path.join(out, 'index.html')).read()
  assert '<th>translation</th>' in page and '<th>reconstruction</th>' in page
  rows = sorted(f for f in os.listdir(out) if f.endswith('.png'))
  # The embedded test split's halves: 2 A images (label maps), 2 B images (photos).
  assert [r.split('__')[0] for r in rows] == ['AtoB', 'AtoB', 'BtoA', 'BtoA']
  data = model_data.for_config(c)
  for direction in ('AtoB', 'BtoA'):
    batch = next(data.eval_inputs(direction, 1))
    fake, rec = cyclegan.make_translate_fn(_nets(c), direction)(state.g_params,
                                                                batch['input'])
    stem = f'{direction}__{batch["name"][0]}'
    for suffix, want in (('input', batch['input']), ('translation', fake),
                         ('reconstruction', rec)):
      got = np.asarray(Image.open(os.path.join(out, 'images', f'{stem}_{suffix}.png')))
      diff = np.abs(got.astype(int) - images.to_uint8(np.asarray(want)[0]).astype(int))
      assert diff.max() <= 1, (suffix, diff.max())
    row = np.asarray(Image.open(os.path.join(out, f'{stem}.png')))  # Three images wide.
    assert row.shape[0] == 32 and 3 * 32 <= row.shape[1] < 4 * 32


def test_sample_one_direction_and_input_dir(trained, tmp_path):
  workdir, _, _ = trained
  folder = tmp_path / 'photos'
  folder.mkdir()
  rng = np.random.default_rng(1)
  for i in range(3):
    Image.fromarray(rng.integers(0, 255, (40, 50, 3), np.uint8)).save(folder / f'p{i}.jpg')
  out = sample.sample(_cli(**{'sample.direction': 'BtoA', 'sample.input_dir': str(folder)}),
                      workdir)
  assert os.path.basename(out) == 'step_4_BtoA_photos'
  assert sorted(f for f in os.listdir(out) if f.endswith('.png')) == [
      'p0.png', 'p1.png', 'p2.png']
  with pytest.raises(ConfigError, match='sample.direction=AtoB'):
    sample.sample(_cli(**{'sample.input_dir': str(folder)}), workdir)  # 'both'
  with pytest.raises(ConfigError, match="'AtoB', 'BtoA' or 'both'"):
    sample.sample(_cli(**{'sample.direction': 'AB'}), workdir)


def test_evaluate_fcn_score_both_ways_and_cycle_l1(trained, tmp_path):
  workdir, state, c = trained
  m = evaluate.evaluate(_cli(str(tmp_path / 'seg')), workdir)
  # A = label maps: G_A makes photos (FCN-score), G_B label maps (label accuracy and IoU).
  for k in ('l1', 'psnr', 'ssim', 'fcn_pixel_acc', 'fcn_class_acc', 'fcn_class_iou',
            'fcn_real_pixel_acc', 'cycle_l1'):
    assert isinstance(m[f'AtoB/{k}'], float), k
  for k in ('l1', 'labels_pixel_acc', 'labels_class_acc', 'labels_class_iou', 'cycle_l1'):
    assert isinstance(m[f'BtoA/{k}'], float), k
  assert 'BtoA/fcn_pixel_acc' not in m and 'AtoB/labels_pixel_acc' not in m
  assert m['num_images'] == {'AtoB': 4, 'BtoA': 4}
  assert set(m['AtoB/fcn_per_class']) and m['fcn_segmenter']
  # cycle_l1: mean |G_B(G_A(a)) - a| over the test inputs, recomputed here.
  data = model_data.for_config(c)
  for direction in ('AtoB', 'BtoA'):
    xs = np.concatenate([b['input'] for b in data.eval_pairs(direction, 2)])
    _, rec = cyclegan.make_translate_fn(_nets(c), direction)(state.g_params, xs)
    want = np.mean(metrics.l1_per_image(np.asarray(rec), xs))
    assert m[f'{direction}/cycle_l1'] == pytest.approx(want, rel=1e-4)
  # The photo side of the eval pairs is the true translation of the label side.
  a = next(data.eval_pairs('AtoB', 4))
  b = next(data.eval_pairs('BtoA', 4))
  np.testing.assert_array_equal(a['input'], b['target'])
  saved = json.load(open(os.path.join(workdir, 'metrics.json')))
  assert saved['AtoB/cycle_l1'] == m['AtoB/cycle_l1']


def test_evaluate_one_direction(trained, tmp_path):
  workdir, _, _ = trained
  m = evaluate.evaluate(_cli(str(tmp_path / 'seg'), **{'sample.direction': 'BtoA'}), workdir)
  assert 'BtoA/labels_pixel_acc' in m and not any(k.startswith('AtoB/') for k in m)


def test_unpaired_folder_evaluates_cycle_l1_only(tmp_path):
  rng = np.random.default_rng(0)
  for side in 'AB':
    for split, n in (('train', 2), ('test', 2)):
      os.makedirs(tmp_path / 'data' / f'{split}{side}')
      for i in range(n):
        Image.fromarray(rng.integers(0, 255, (36, 36, 3), np.uint8)).save(
            tmp_path / 'data' / f'{split}{side}' / f'{side}{i}.png')
  c = tiny_cyclegan_config(**{'data.dataset': 'unpaired_folder', 'data.direction': 'AtoB',
                              'data.data_path': str(tmp_path / 'data'),
                              'batch_size': 2, 'num_train_steps': 1})
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(c, workdir)
  m = evaluate.evaluate(_cli(), workdir)
  assert sorted(k for k in m if '/' in k) == ['AtoB/cycle_l1', 'BtoA/cycle_l1']
  assert any('cycle L1 only' in n for n in m['notes'])


def test_model_interface_names_its_generators():
  c = tiny_cyclegan_config(**{'loss.lambda_identity': 0.0})
  data = gan.DataInfo(3, 1)
  nets = cyclegan.build(c, data)
  state = jax.eval_shape(lambda: cyclegan.init_state(nets, c, data, 0))
  gens = cyclegan.generators(nets, {'g_params': state.g_params}, data)
  assert {k: v[3] for k, v in gens.items()} == {'AtoB': (3, 1), 'BtoA': (1, 3)}


def test_export_both_generators(trained, tmp_path):
  import importlib.util
  workdir, _, _ = trained
  from p2p_jax import export
  out = export.export(_cli(**{'sample.output_dir': str(tmp_path / 'exp')}), workdir)
  x = np.random.default_rng(2).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  for direction in ('AtoB', 'BtoA'):
    d = os.path.join(out, direction)
    spec = importlib.util.spec_from_file_location(f'exported_{direction}',
                                                  os.path.join(d, 'exported.py'))
    loader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loader)
    assert json.load(open(os.path.join(d, 'export.json')))['generator'] == direction
    want = inference.Translator.from_workdir(workdir, direction=direction).translate(x)
    np.testing.assert_allclose(loader.load(d)(x), want, atol=1e-5)


def test_periodic_evaluation_per_direction_equals_evaluate(trained, tmp_path):
  from p2p_jax import evaluation
  workdir, state, c = trained
  c = tiny_cyclegan_config(**{'num_eval_images': 4, 'eval_every_steps': 1})
  data = model_data.for_config(c)
  scalars = {}

  class Writer:
    def write_scalars(self, step, s):
      scalars[step] = s

  evaluator = evaluation.make_periodic_evaluator(c, data, cyclegan.build(c, data.info), Writer())
  m = evaluator(4, state)
  assert evaluator(5, state) == m  # A fixed subset: the same state scores the same.
  want = evaluate.evaluate(_cli(str(tmp_path / 'seg')), workdir)
  for k in ('AtoB/l1', 'AtoB/cycle_l1', 'BtoA/labels_pixel_acc', 'BtoA/cycle_l1'):
    assert scalars[4][f'eval/{k}'] == pytest.approx(want[k], rel=1e-5), k
