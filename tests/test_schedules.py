"""Run length (steps or epochs, one field) and the reference's epoch-based lr schedule."""

import glob
import os

import numpy as np
import pytest
from absl import flags
from conftest import ROOT
from ml_collections import config_flags

from p2p_jax import schedules
from p2p_jax.errors import ConfigError

CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', '*.py')))
PAPER = [p for p in CONFIGS if os.path.basename(p) not in ('default.py',)]


def load(path, *overrides):
  """The config as ``main`` gets it: the file plus ``--config.x=v`` command-line overrides."""
  argv = ['main', f'--config={path}'] + [f'--config.{o}' for o in overrides]
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, '', flag_values=fv, lock_config=True,
                                  sys_argv=argv)
  fv(argv)
  return fv.config


def reference_lambda(epoch, n_epochs, n_epochs_decay, epoch_count=1):
  """The reference's lambda_rule (models/networks.py, lr_policy='linear'), in float64."""
  return 1.0 - max(0, epoch + epoch_count - n_epochs) / float(n_epochs_decay + 1)


@pytest.mark.parametrize('path', PAPER, ids=os.path.basename)
def test_an_explicit_step_count_is_the_length_on_every_paper_config(path):
  c = load(path)
  assert schedules.parse_length(c.num_train_steps)[1] == 'epochs'  # The paper's default.
  assert schedules.total_steps(load(path, 'num_train_steps=2').num_train_steps, 400) == 2
  assert schedules.total_steps(load(path, 'num_train_steps=2steps').num_train_steps, 400) == 2
  assert schedules.total_steps(load(path, 'num_train_steps=3ep').num_train_steps, 400) == 1200


def test_paper_and_default_lengths():
  assert schedules.total_steps(load(os.path.join(ROOT, 'configs', 'facades.py')).num_train_steps,
                               400) == 80_000
  assert schedules.total_steps(load(os.path.join(ROOT, 'configs', 'edges2shoes.py')
                                    ).num_train_steps, 49825 // 4) == 186_840
  default = load(os.path.join(ROOT, 'configs', 'default.py'))
  assert schedules.total_steps(default.num_train_steps, 100) == 1500
  assert schedules.total_steps(load(os.path.join(ROOT, 'configs', 'default.py'),
                                    'num_train_steps=2.5ep').num_train_steps, 100) == 250


@pytest.mark.parametrize('value,expected', [
    (7, (7.0, 'steps')), ('7', (7.0, 'steps')), ('80_000', (80000.0, 'steps')),
    (1e5, (1e5, 'steps')), ('7steps', (7.0, 'steps')), ('200ep', (200.0, 'epochs')),
    ('200 epochs', (200.0, 'epochs')), ('1EPOCH', (1.0, 'epochs')), ('.5ep', (0.5, 'epochs')),
])
def test_parse_length(value, expected):
  assert schedules.parse_length(value) == expected


@pytest.mark.parametrize('value', [0, -3, '0ep', '1.5', '1.5steps', '200e', 'abc', '', True,
                                   None, 2.5, float('inf')])
def test_bad_lengths_fail_with_the_fix_in_one_line(value):
  with pytest.raises(ConfigError, match='num_train_steps') as e:
    schedules.parse_length(value)
  assert '\n' not in str(e.value) and '200ep' in str(e.value)


def test_less_than_a_step_of_epochs_is_refused():
  with pytest.raises(ConfigError, match='less than one step'):
    schedules.total_steps('0.001ep', 100)


def test_paper_lr_at_every_epoch_equals_the_reference_formula():
  optim = load(os.path.join(ROOT, 'configs', 'facades.py')).optim
  spe = 400  # Facades: 400 pairs at batch 1.
  lr = schedules.learning_rate_fn(optim, spe)
  got = np.asarray(lr(np.arange(200 * spe)), np.float64).reshape(200, spe)
  want = np.array([2e-4 * reference_lambda(e, 100, 100) for e in range(200)])
  # Constant within each epoch, the reference's value in every one of the 200.
  np.testing.assert_allclose(got, np.repeat(want[:, None], spe, 1), rtol=1e-6, atol=0)
  assert got[99, -1] == pytest.approx(2e-4) and got[100, 0] == pytest.approx(2e-4 * 100 / 101)
  assert got[199, -1] == pytest.approx(2e-4 / 101)
  assert float(lr(200 * spe)) == 0.0 and float(lr(10 ** 6)) == 0.0  # Never negative.


def test_lr_matches_torch_lambdalr_stepped_once_per_epoch():
  torch = pytest.importorskip('torch')
  w = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.Adam([w], lr=2e-4, betas=(0.5, 0.999))
  sched = torch.optim.lr_scheduler.LambdaLR(
      opt, lr_lambda=lambda e: reference_lambda(e, n_epochs=3, n_epochs_decay=4))
  spe = 5
  ours = schedules.linear_decay(2e-4, spe, constant_epochs=3, decay_epochs=4)
  for epoch in range(7):
    for i in range(spe):
      assert float(ours(epoch * spe + i)) == pytest.approx(opt.param_groups[0]['lr'], rel=1e-6)
    opt.step()  # The reference's order: the epoch's updates, then the scheduler.
    sched.step()


def test_the_schedule_does_not_depend_on_the_run_length():
  """A run resumed halfway with a longer length keeps its decay start and curve."""
  facades = os.path.join(ROOT, 'configs', 'facades.py')
  curves = []
  for length in ('200ep', '300ep', '80000', '2'):
    c = load(facades, f'num_train_steps={length}')
    curves.append(np.asarray(schedules.learning_rate_fn(c.optim, 400)(np.arange(0, 90_000, 7))))
  for curve in curves[1:]:
    np.testing.assert_array_equal(curve, curves[0])
  assert schedules.decay_steps(load(facades).optim, 400) == (40_000, 80_000)


def test_default_demo_keeps_a_constant_lr():
  c = load(os.path.join(ROOT, 'configs', 'default.py'))
  lr = schedules.learning_rate_fn(c.optim, 100)
  assert {float(lr(step)) for step in (0, 99, 100, 750, 1499, 10 ** 6)} == {2e-4}
  assert schedules.decay_steps(c.optim, 100) is None
  assert schedules.describe(1500, 100, c.optim) == (
      'length 1500 steps = 15 epochs of 100 steps; lr 0.0002, constant')


def test_describe_states_length_in_steps_and_epochs_and_the_decay_start():
  optim = load(os.path.join(ROOT, 'configs', 'facades.py')).optim
  assert schedules.describe(80_000, 400, optim) == (
      'length 80000 steps = 200 epochs of 400 steps; lr 0.0002 constant to step 40000 '
      '(epoch 100), then decays linearly each epoch to 0 at step 80000 (epoch 200)')
  assert schedules.describe(2, 400, optim).startswith('length 2 steps = 0.005 epochs of 400')
  assert schedules.describe(2, 400, optim).endswith('this run ends before the decay starts')
  assert schedules.lr_zero_warning(80_000, 400, optim) is None
  warning = schedules.lr_zero_warning(120_000, 400, optim)
  assert 'steps 80000..120000 train at learning rate 0' in warning
  assert '--config.optim.lr_decay_epochs' in warning
