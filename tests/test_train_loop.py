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
