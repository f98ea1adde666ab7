"""--mode=evaluate, the FCN-score segmenter and periodic evaluation."""

import glob
import json
import math
import os

import ml_collections
import numpy as np
import pytest
from conftest import tiny_config

from p2p_jax import evaluate, evaluation, metrics, train_segmenter
from p2p_jax.data import label_classes
from p2p_jax.segmenter import cache as segmenter_cache
from p2p_jax.segmenter import training as segmenter_training
from p2p_jax.checkpoints import Checkpointer
from p2p_jax.data import facade_labels, model_data, pipeline, sources
from p2p_jax.rng import make_key
from p2p_jax.pix2pix import create_train_state, make_networks

REQUIRED = ('l1', 'psnr', 'ssim', 'fcn_pixel_acc', 'fcn_class_acc', 'fcn_class_iou',
            'fcn_real_pixel_acc', 'fcn_real_class_acc', 'fcn_real_class_iou',
            'hist_intersection_a', 'hist_intersection_b')


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
  return str(tmp_path_factory.mktemp('segmenters'))


def eval_config(cache_dir, **overrides):
  """Tiny run config with a tiny segmenter (learns window vs wall in a few seconds)."""
  c = tiny_config(**overrides)
  c.fcn = ml_collections.ConfigDict({'num_steps': 100, 'lr': 5e-3, 'features': [8, 16, 32],
                                     'batch_size': 8, 'seed': 0, 'cache_dir': cache_dir})
  return c


def save_untrained_checkpoint(workdir, config):
  """A checkpoint of freshly initialised networks (no training compile: fast)."""
  ch = sources.io_channels(config)
  nets = make_networks(config, ch.target)
  s = config.image_size
  state = create_train_state(nets, make_key(0), (s, s, ch.input), ch.target)
  ckpt = Checkpointer(workdir)
  ckpt.save(0, state, config, (ch.input, ch.target))
  ckpt.wait()
  ckpt.close()
  return state, nets


@pytest.fixture(scope='module')
def segmenter(cache):
  return segmenter_training.load_or_train(eval_config(cache))


@pytest.fixture(scope='module')
def run(tmp_path_factory, cache):
  workdir = str(tmp_path_factory.mktemp('eval_run'))
  state, nets = save_untrained_checkpoint(workdir, eval_config(cache))
  return workdir, state, nets


def test_fcn_score_of_ground_truth_beats_noise(segmenter):
  c = tiny_config()
  batch = next(pipeline.as_numpy(pipeline.eval_dataset(c, sources.get_source(c), 4)))
  classes = segmenter.spec.decode_model_image(batch['input'])  # BtoA: input = labels.
  real = metrics.segmentation_scores(segmenter.confusion(batch['target'], classes))
  noise = np.random.default_rng(0).uniform(-1, 1, batch['target'].shape)
  fake = metrics.segmentation_scores(segmenter.confusion(noise, classes))
  for k in ('pixel_acc', 'class_acc', 'class_iou'):
    assert real[k] > fake[k], (k, real, fake)
  assert real['pixel_acc'] > fake['pixel_acc'] + 0.05


def test_evaluate_writes_metrics_json_and_tensorboard(run, segmenter, cache, capsys):
  workdir, _, _ = run
  out = evaluate.evaluate(eval_config(cache), workdir)
  printed = capsys.readouterr().out
  assert 'training the FCN-score segmenter' not in printed  # The cached one is reused.
  path = os.path.join(workdir, 'metrics.json')
  assert printed.strip().splitlines()[-1] == path
  m = json.load(open(path))
  assert m == json.load(open(os.path.join(workdir, 'metrics_step_0.json')))
  for k in REQUIRED:
    assert isinstance(m[k], float) and math.isfinite(m[k]), k
  for k in REQUIRED[3:]:
    assert 0.0 <= m[k] <= 1.0, k
  assert m['num_images'] == 4 and m['step'] == 0 and m['settings']['paper_mode'] is True
  assert m['fcn_segmenter'] == segmenter.path
  assert set(m['fcn_per_class']) == set(facade_labels.CLASS_NAMES)
  assert out['l1'] == m['l1']
  events = glob.glob(os.path.join(workdir, 'events.out.tfevents*'))
  assert any(b'eval/fcn_pixel_acc' in open(e, 'rb').read() for e in events)


def test_identical_outputs_score_perfectly_and_noise_poorly(segmenter):
  c = tiny_config()
  batch = next(pipeline.as_numpy(pipeline.eval_dataset(c, sources.get_source(c), 4)))
  x, t = batch['input'], batch['target']
  same = evaluation.metrics_accumulator(c, segmenter)
  same.add(x, t, t)
  m = same.result()
  assert m['l1'] == 0.0 and m['psnr'] == metrics.PSNR_CAP
  assert m['ssim'] == pytest.approx(1.0, abs=1e-4)
  for ch in 'Lab':
    assert m[f'hist_intersection_{ch}'] == pytest.approx(1.0)
  for k in ('pixel_acc', 'class_acc', 'class_iou'):
    assert m[f'fcn_{k}'] == m[f'fcn_real_{k}']
  noisy = evaluation.metrics_accumulator(c, segmenter)
  noisy.add(x, np.random.default_rng(1).uniform(-1, 1, t.shape).astype(np.float32), t)
  n = noisy.result()
  assert n['l1'] > 0.3 and n['psnr'] < 15 and n['ssim'] < 0.2
  assert n['hist_intersection_L'] < 0.9
  assert n['fcn_pixel_acc'] < n['fcn_real_pixel_acc']


def test_photo_to_labels_run_has_no_fcn_score_but_label_accuracy(tmp_path, cache):
  c = eval_config(cache, **{'data.direction': 'AtoB'})
  save_untrained_checkpoint(str(tmp_path), c)
  c.sample.max_images = 2
  m = evaluate.evaluate(c, str(tmp_path))
  assert all(m[k] is None for k in metrics.FCN_KEYS)
  assert 'photo -> labels' in m['notes'][0]
  assert 0.0 <= m['labels_pixel_acc'] <= 1.0 and m['num_images'] == 2
  assert json.load(open(tmp_path / 'metrics.json'))['fcn_pixel_acc'] is None


class _Writer:
  def __init__(self):
    self.scalars = {}

  def write_scalars(self, step, scalars):
    self.scalars.setdefault(step, {}).update(scalars)


def test_periodic_evaluator_on_a_fixed_subset(run, segmenter, cache):
  workdir, state, nets = run
  c = eval_config(cache, eval_every_steps=1, num_eval_images=2)
  writer = _Writer()
  ev = evaluation.make_periodic_evaluator(c, model_data.for_config(c), nets, writer)
  m1 = ev(5, state)
  m2 = ev(6, state)
  assert m1 == m2  # Fixed subset, fixed noise: the same state scores the same.
  assert set(writer.scalars) == {5, 6}
  s = writer.scalars[5]
  for k in ('l1', 'psnr', 'ssim', 'hist_intersection_a', 'fcn_pixel_acc', 'fcn_class_iou'):
    assert f'eval/{k}' in s and math.isfinite(s[f'eval/{k}']), k


def test_train_segmenter_mode_reuses_the_cache(run, segmenter, cache, capsys):
  workdir, _, _ = run
  seg = train_segmenter.train_segmenter(eval_config(cache), workdir)
  lines = capsys.readouterr().out.strip().splitlines()
  assert lines[-1] == seg.path == segmenter.path
  assert lines[-2].startswith('segmenter on real test photos: pixel acc')


def test_class_decoding_per_dataset():
  f = label_classes.class_spec('facades')
  np.testing.assert_array_equal(f.decode(facade_labels.PALETTE), np.arange(12))
  assert label_classes.class_spec('embedded').num_classes == 12
  cs = label_classes.class_spec('cityscapes')
  assert cs.num_classes == 19
  colours = np.array([c for _, _, c in label_classes.CITYSCAPES_LABELS], np.uint8)
  np.testing.assert_array_equal(cs.decode(colours),
                                [t for _, t, _ in label_classes.CITYSCAPES_LABELS])
  # JPEG-like noise still decodes to the nearest colour; void stays ignored.
  noisy = np.clip(colours.astype(int) + 3, 0, 255)
  assert (cs.decode(noisy) == cs.decode(colours)).all()
  assert cs.decode(np.array([[128, 64, 128], [0, 0, 0], [0, 0, 142]])).tolist() == [0, 255, 13]
  assert label_classes.class_spec('maps') is None and label_classes.class_spec('custom') is None


def test_fcn_applies_only_to_labels_to_photo_runs(cache):
  assert evaluation.fcn_not_applicable(tiny_config()) is None
  assert 'photo -> labels' in evaluation.fcn_not_applicable(
      tiny_config(**{'data.direction': 'AtoB'}))
  assert 'no known label classes' in evaluation.fcn_not_applicable(
      tiny_config(**{'data.dataset': 'maps'}))
  # The cache key follows dataset, size and segmenter settings, not the run's direction.
  base = eval_config(cache)
  cache_dir = segmenter_cache.cache_dir
  assert cache_dir(base) == cache_dir(eval_config(cache, **{'data.direction': 'AtoB'}))
  assert cache_dir(base) != cache_dir(eval_config(cache, image_size=64))
  other = eval_config(cache)
  other.fcn.num_steps = 101
  assert cache_dir(base) != cache_dir(other)
  assert cache_dir(base).startswith(os.path.join(cache, 'p2p_jax', 'segmenters',
                                                 'embedded_32_'))
