"""CycleGAN through the shared core: the training loop (2 fake CPU devices), resume,
DataParallel's pmap and shard_map, and --mode=summary."""

import os
import shutil
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT, assert_adam_params_close, tiny_cyclegan_config

from p2p_jax import cyclegan, gan, summary, train
from p2p_jax.parallel import DataParallel


def loop_config(**kw):
  # 8 embedded pairs -> 4 label maps and 4 photos; batch 2 (1 per device): 2 steps an
  # epoch, 1 + 1 epochs.
  return tiny_cyclegan_config(**{'batch_size': 2, 'num_train_steps': '2ep',
                                 'optim.lr_constant_epochs': 1, 'optim.lr_decay_epochs': 1,
                                 'checkpoint_every_steps': 2, **kw})


def trees_equal(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('cg_straight'))
  return workdir, train.train_and_evaluate(loop_config(), workdir)


def test_loop_trains_samples_and_checkpoints(straight):
  workdir, state = straight
  assert int(state.step) == 4
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4']
  assert os.listdir(os.path.join(workdir, 'samples'))
  # Each of the 2 devices kept its own pool: 4 steps x 1 image each.
  pools = state.pools['fake_a']
  assert pools.images.shape[:2] == (2, 50) and pools.count.tolist() == [4, 4]
  assert not np.allclose(pools.images[0, :4], pools.images[1, :4])


def test_resume_equals_uninterrupted(straight, tmp_path):
  workdir, want = straight
  resumed_dir = str(tmp_path / 'resumed')
  shutil.copytree(workdir, resumed_dir)
  shutil.rmtree(os.path.join(resumed_dir, 'checkpoints', '4'))  # Stopped after step 2.
  got = train.train_and_evaluate(loop_config(), resumed_dir)
  assert int(got.step) == 4
  trees_equal(want.g_params, got.g_params)
  trees_equal(want.d_params, got.d_params)
  trees_equal(want.g_opt_state, got.g_opt_state)
  trees_equal(want.d_opt_state, got.d_opt_state)
  trees_equal(want.pools, got.pools)


def test_pmap_equals_shard_map():
  c = tiny_cyclegan_config()
  model = gan.get_model(c)
  assert model is cyclegan
  info = gan.DataInfo(3, 3, 4)
  rng = np.random.default_rng(0)
  batch = {k: rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32) for k in 'AB'}
  out = {}
  for mode in ('shard_map', 'pmap'):
    c.parallelism = mode
    dp = DataParallel.from_config(c, info, devices=jax.local_devices()[:2])
    state = model.init_state(dp.nets, c, info, 0, num_devices=2)
    s = dp.put_state(state)
    for _ in range(2):
      s, m = dp.step(s, dp.put_batch(batch))
    out[mode] = (jax.device_get(dp.get_state(s)), dp.host_metrics(m)[0])
  (sa, ma), (sb, mb) = out['shard_map'], out['pmap']
  for k in ma:
    np.testing.assert_allclose(ma[k], mb[k], rtol=1e-5, atol=1e-6, err_msg=k)
  # Conv biases before instance norm have rounding-noise gradients (they cancel out), so
  # Adam moves them by up to ~lr either way; everything else agrees tightly.
  assert_adam_params_close(sa.g_params, sb.g_params, max_loose_fraction=0.02)
  assert_adam_params_close(sa.d_params, sb.d_params, max_loose_fraction=0.02)
  assert sa.pools['fake_b'].images.shape == sb.pools['fake_b'].images.shape == (2, 50, 32, 32, 3)
  np.testing.assert_allclose(np.asarray(sa.pools['fake_b'].images),
                             np.asarray(sb.pools['fake_b'].images), atol=1e-4)
  assert sb.pools['fake_b'].count.tolist() == [2, 2]
  # A state made for another device count is refused with a clear message.
  with pytest.raises(cyclegan.ConfigError, match='resume on as many devices'):
    dp.put_state(model.init_state(dp.nets, c, info, 0, num_devices=1))


def test_summary_prints_the_reference_counts():
  sys.path.insert(0, os.path.join(ROOT, 'configs'))
  import cyclegan_horse2zebra
  text = summary.summary_text(cyclegan_horse2zebra.get_config(), 3, 3)
  assert text.count('parameters: 11,378,179') == 2  # G_A and G_B, resnet_9blocks.
  assert text.count('parameters: 2,764,737') == 2  # D_A and D_B, instance norm.
  c = cyclegan_horse2zebra.get_config()
  c.model.generator = 'resnet_6blocks'
  assert summary.summary_text(c, 3, 3).count('parameters: 7,837,699') == 2


def test_cyclegan_config_errors():
  with pytest.raises(cyclegan.ConfigError, match='multiple of 4'):
    train.validate_config(tiny_cyclegan_config(image_size=30), 1)
  with pytest.raises(cyclegan.ConfigError, match='resnet_<n>blocks'):
    cyclegan.make_networks(tiny_cyclegan_config(**{'model.generator': 'unet'}), 3, 3)
  with pytest.raises(cyclegan.ConfigError, match='model.name'):
    gan.get_model(tiny_cyclegan_config(**{'model.name': 'cycle'}))
