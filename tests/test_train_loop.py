"""The real train_and_evaluate on the embedded data (tiny config, 2 fake CPU devices)."""

import json
import os

import jax
import numpy as np
import pytest
from conftest import assert_adam_params_close, tiny_config

from p2p_jax import train
from p2p_jax.checkpoints import Checkpointer
from p2p_jax.errors import CheckpointError, ConfigError, TrainingError


def params_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('straight'))
  state = train.train_and_evaluate(tiny_config(num_train_steps=3), workdir)
  return workdir, state


def test_writes_checkpoint_samples_and_summaries(uninterrupted):
  workdir, state = uninterrupted
  assert int(state.step) == 3
  assert Checkpointer(workdir).latest_step() == 3
  samples = os.listdir(os.path.join(workdir, 'samples'))
  assert samples == ['step_0000003.png']
  assert any(f.startswith('events.out.tfevents') for f in os.listdir(workdir))
  with open(os.path.join(workdir, 'train_stats.json')) as f:
    stats = json.load(f)
  assert stats['end_step'] == 3 and stats['steady_steps_per_sec'] > 0
  _, saved, channels = Checkpointer(workdir).restore_meta()
  assert saved.model.ngf == 8 and channels == (3, 3)


def test_resume_equals_uninterrupted(uninterrupted, tmp_path, capsys):
  _, straight = uninterrupted
  workdir = str(tmp_path)
  train.train_and_evaluate(tiny_config(num_train_steps=1), workdir)
  resumed = train.train_and_evaluate(tiny_config(num_train_steps=3), workdir)
  assert 'resuming from step 1' in capsys.readouterr().out
  assert int(resumed.step) == 3
  params_equal(straight.g_params, resumed.g_params)
  params_equal(straight.d_params, resumed.d_params)
  params_equal(straight.g_batch_stats, resumed.g_batch_stats)
  params_equal(straight.g_opt_state, resumed.g_opt_state)


def test_multi_step_dispatch_with_a_partial_tail(uninterrupted, tmp_path):
  _, straight = uninterrupted
  # 3 steps with 2 per dispatch: one fused dispatch, then one single step.
  state = train.train_and_evaluate(tiny_config(num_train_steps=3, steps_per_dispatch=2),
                                   str(tmp_path))
  assert int(state.step) == 3
  assert_adam_params_close(straight.g_params, state.g_params)


def test_non_finite_loss_stops_with_a_clear_error(tmp_path):
  c = tiny_config(num_train_steps=2)
  c.loss.lambda_l1 = float('nan')
  with pytest.raises(TrainingError, match='Non-finite loss at step 1'):
    train.train_and_evaluate(c, str(tmp_path))


def test_checkpoint_of_another_model_is_refused(uninterrupted):
  workdir, _ = uninterrupted
  with pytest.raises(CheckpointError, match='model.ngf'):
    train.train_and_evaluate(tiny_config(num_train_steps=4, **{'model.ngf': 16}), workdir)


@pytest.mark.parametrize('overrides,match', [
    ({'batch_size': 3}, 'multiple of the number of devices'),
    ({'image_size': 48}, 'multiple of 32'),
    ({'data.load_size': 30}, 'load_size'),
])
def test_bad_configs_fail_before_training(tmp_path, overrides, match):
  with pytest.raises(ConfigError, match=match):
    train.train_and_evaluate(tiny_config(**overrides), str(tmp_path))


def tiny_paper_config(**overrides):
  """configs/facades.py (200 epochs, lr decay from epoch 100) shrunk onto the embedded data:
  4 training pairs at batch 2, so an epoch is 2 steps."""
  import facades
  c = facades.get_config()
  tiny = {'image_size': 32, 'batch_size': 2, 'num_sample_images': 2, 'log_every_steps': 1,
          'data.dataset': 'embedded', 'data.load_size': 36, 'data.embedded_resolution': 36,
          'data.embedded_num_train': 4, 'data.embedded_num_test': 2, 'data.shuffle_buffer': 4,
          'model.num_downs': 5, 'model.ngf': 8, 'model.ndf': 8}
  for k, v in {**tiny, **overrides}.items():
    *path, leaf = k.split('.')
    target = c
    for p in path:
      target = target[p]
    target[leaf] = v
  return c


@pytest.fixture(scope='module')
def paper_straight(tmp_path_factory):
  """Two epochs straight through, the lr halving at epoch 1 (decay over 1 epoch)."""
  c = tiny_paper_config(**{'num_train_steps': '2ep', 'optim.lr_constant_epochs': 1,
                           'optim.lr_decay_epochs': 1})
  return train.train_and_evaluate(c, str(tmp_path_factory.mktemp('paper_straight')))


def test_paper_config_with_a_step_count_runs_it_then_extends_on_the_same_curve(
    paper_straight, tmp_path, capsys, caplog, monkeypatch):
  from p2p_jax import schedules
  seen = []
  real = schedules.learning_rate_fn
  monkeypatch.setattr(schedules, 'learning_rate_fn',
                      lambda optim, spe: seen.append(spe) or real(optim, spe))
  sched = {'optim.lr_constant_epochs': 1, 'optim.lr_decay_epochs': 1}
  workdir = str(tmp_path)
  caplog.set_level('INFO')
  # The paper config says '200ep'; the explicit step count is what runs.
  state = train.train_and_evaluate(tiny_paper_config(num_train_steps=2, **sched), workdir)
  assert int(state.step) == 2 and Checkpointer(workdir).latest_step() == 2
  assert seen == [2]  # The lr schedule got the data's 2 steps per epoch.
  assert ('length 2 steps = 1 epoch of 2 steps; lr 0.0002 constant to step 2 (epoch 1), then '
          'decays linearly each epoch to 0 at step 4 (epoch 2); this run ends before the decay '
          'starts (an epoch: 4 training pairs // batch 2)') in caplog.text
  # Extending the finished run: resumes at 2 and runs on to 2 epochs, at the decayed lr,
  # exactly as the straight two-epoch run.
  resumed = train.train_and_evaluate(tiny_paper_config(num_train_steps='2ep', **sched), workdir)
  assert 'resuming from step 2' in capsys.readouterr().out
  assert int(resumed.step) == 4 and Checkpointer(workdir).latest_step() == 4
  for name in ('g_params', 'd_params', 'g_batch_stats', 'g_opt_state', 'd_opt_state'):
    params_equal(getattr(paper_straight, name), getattr(resumed, name))
  # Asking for no more than is done trains nothing and says how to go on.
  again = train.train_and_evaluate(tiny_paper_config(num_train_steps=3, **sched), workdir)
  assert int(again.step) == 4
  assert 'nothing to train' in capsys.readouterr().out


def test_the_decay_changes_the_result(paper_straight, tmp_path):
  """The schedule reaches the optimiser: without the decay the second epoch differs."""
  constant = train.train_and_evaluate(
      tiny_paper_config(num_train_steps='2ep', **{'optim.lr_decay_epochs': 0}), str(tmp_path))
  diff = max(float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in
             zip(jax.tree.leaves(paper_straight.g_params), jax.tree.leaves(constant.g_params)))
  assert diff > 1e-6


@pytest.mark.parametrize('overrides,match', [
    ({'num_train_steps': '200 epochz'}, "num_train_steps=200ep"),
    ({'num_train_steps': 0}, 'more than 0'),
    ({'optim.lr_decay_epochs': -1}, 'optim.lr_decay_epochs must be >= 0'),
])
def test_bad_lengths_fail_before_training(tmp_path, overrides, match):
  with pytest.raises(ConfigError, match=match):
    train.train_and_evaluate(tiny_paper_config(**overrides), str(tmp_path))
  assert not os.path.exists(os.path.join(str(tmp_path), 'checkpoints'))


def test_a_leftover_num_epochs_field_is_refused(tmp_path):
  c = tiny_config()
  c.num_epochs = 200  # An old-style config file: unlocked ConfigDict, field added silently.
  with pytest.raises(ConfigError, match="num_train_steps='200ep'"):
    train.train_and_evaluate(c, str(tmp_path))
