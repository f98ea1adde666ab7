"""The benchmark runs and reports what it promises (no timing assertions)."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, tiny_config, tiny_cyclegan_config

from p2p_jax import bench, convolution
from p2p_jax.cpu import allocator



def clean_env():
  """This process's environment without the test session's fake devices, preloads and
  overrides, for a bench run in a subprocess as a user would start it."""
  env = dict(os.environ)
  for key in ('XLA_FLAGS', 'LD_PRELOAD', allocator.ENV, allocator.APPLIED_ENV,
              convolution.OVERRIDE_ENV):
    env.pop(key, None)
  return env

def test_bench_train_reports_the_documented_fields():
  c = tiny_config(batch_size=2)
  (line,) = bench.bench_train(c, steps=2, warmup=1, rounds=1, with_torch=False)
  for key in ('images_per_sec', 'step_ms', 'compile_s', 'batch_size', 'image_size', 'dtype',
              'device', 'num_devices', 'jax_version', 'flops_per_step', 'tflops_per_sec',
              'convolutions'):
    assert key in line, key
  assert line['images_per_sec'] > 0 and line['step_ms'] > 0
  # A U-Net + PatchGAN step at 32 px is at least millions of FLOPs.
  assert line['flops_per_step'] > 1e6
  assert line['num_devices'] == 2  # conftest's fake devices
  # CPU seconds per wall second: positive, and no more than the machine's cores can give.
  assert 0 < line['host_cpu_util'] <= 1.1 * (os.cpu_count() or 1)
  assert f'{os.cpu_count()} cores' in line['host_cpu']
  json.dumps(line)


def test_host_cpu_names_the_model_and_widest_simd(tmp_path):
  info = tmp_path / 'cpuinfo'
  info.write_text('processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n'
                  'flags\t\t: fpu sse avx avx2 fma\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n')
  assert bench.host_cpu(str(info)) == f'AMD EPYC ({os.cpu_count()} cores, avx2)'
  info.write_text('model name\t: Intel Xeon\nflags\t\t: avx avx2 avx512f avx512bw\n')
  assert bench.host_cpu(str(info)).endswith('avx512f)')
  info.write_text('model name\t: Intel Xeon\nflags\t\t: avx2 avx512f amx_bf16 amx_tile\n')
  assert bench.host_cpu(str(info)).endswith('avx512f, amx)')
  # Field order does not matter: flags first still finds the model name.
  info.write_text('flags\t\t: avx avx2\nmodel name\t: Intel Xeon\n')
  assert bench.host_cpu(str(info)) == f'Intel Xeon ({os.cpu_count()} cores, avx2)'
  # Family and model numbers, from the first processor's block only.
  info.write_text('processor\t: 0\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n'
                  'flags\t\t: avx2 avx512f\n\nprocessor\t: 1\ncpu family\t: 25\nmodel\t\t: 1\n')
  assert bench.host_cpu(str(info)) == (
      f'AMD EPYC ({os.cpu_count()} cores, avx512f, family 26 model 2)')
  # No /proc/cpuinfo (macOS, Windows): still a description, never an error.
  assert 'cores' in bench.host_cpu(str(tmp_path / 'missing'))


def test_bench_loop_compares_the_real_loop_with_steps_timed_around_it():
  c = tiny_config(batch_size=2)
  before, after, loop = bench.bench_loop(c, steps=3, warmup=1)
  assert before['impl'] == after['impl'] == 'p2p_jax' and loop['impl'] == 'train_loop'
  assert loop['step_images_per_sec'] == pytest.approx(
      0.5 * (before['images_per_sec'] + after['images_per_sec']))
  assert loop['images_per_sec'] > 0
  assert loop['loop_over_step'] == pytest.approx(
      loop['images_per_sec'] / loop['step_images_per_sec'])
  json.dumps(loop)


def test_bench_side_by_side_with_torch():
  pytest.importorskip('torch')
  c = tiny_config(batch_size=2, **{'model.dropout': 0.5})
  lines = bench.bench_train(c, steps=1, warmup=1, rounds=2, with_torch=True)
  assert [l['impl'] for l in lines] == ['p2p_jax', 'torch', 'ratio']
  ratio = lines[2]
  assert ratio['p2p_jax_over_torch_images_per_sec'] > 0
  assert len(ratio['round_ratios']) == 2
  assert ratio['round_ratio_min'] == min(ratio['round_ratios']) <= ratio['round_ratio_max']
  assert lines[1]['torch_process'] == 'separate' and lines[1]['host_cpu_util'] > 0
  assert lines[1]['malloc'] == lines[0]['malloc']  # The child inherits the allocator.


def test_round_ratios_pair_each_round():
  # p2p_jax took 2 s and then 1 s per step; PyTorch 3 s and then 0.5 s: 1.5x, then 0.5x.
  assert bench.round_ratios([2.0, 1.0], [3.0, 0.5]) == [1.5, 0.5]


@pytest.mark.parametrize('config, match', [
    (lambda: tiny_config(batch_size=2, **{'model.g_norm': 'nope'}), "'nope'"),
    (lambda: tiny_cyclegan_config(**{'loss.gan_mode': 'vanilla'}), 'LSGAN only'),
], ids=['pix2pix', 'cyclegan'])
def test_torch_process_reports_a_failure_in_the_child(config, match):
  pytest.importorskip('torch')
  with pytest.raises(RuntimeError, match=f'PyTorch reference step failed: .*{match}'):
    bench.TorchProcess(config(), 3, warmup=1)


def _tiny_cyclegan(**overrides):
  return tiny_cyclegan_config(**{'model.generator': 'resnet_2blocks', **overrides})


def test_bench_times_the_cyclegan_step_through_the_model_interface(monkeypatch):
  built = []

  class Recorded(bench.JaxStep):
    def __init__(self, *args, **kw):
      super().__init__(*args, **kw)
      built.append(self)
  monkeypatch.setattr(bench, 'JaxStep', Recorded)
  c = _tiny_cyclegan(batch_size=2)  # One image per fake device.
  (line,) = bench.bench_train(c, steps=1, warmup=1, rounds=1, with_torch=False)
  assert line['impl'] == 'p2p_jax' and line['model'] == 'cyclegan'
  assert line['generator'] == 'resnet_2blocks' and line['ngf'] == line['ndf'] == 4
  assert 'num_downs' not in line  # pix2pix's field; CycleGAN has no U-Net.
  assert line['images_per_sec'] > 0 and line['step_ms'] > 0 and line['num_devices'] == 2
  # Four networks forward and backward, six generator passes: well over pix2pix's 1e6.
  assert line['flops_per_step'] > 1e7
  json.dumps(line)
  # The model's batch and state: each of the 2 devices keeps its own image pools, as in
  # training, and the steps ran: JaxStep.run(n) runs n steps back to back, then n more one
  # by one, for the warmup and for the timed round: 4 steps, one image per device each.
  (jx,) = built
  assert set(jx.batch) == {'A', 'B'}
  state = jx.dp.get_state(jx.state)
  assert state.pools['fake_a'].count.tolist() == [4, 4]
  assert int(state.step) == 4


def test_bench_cli_cyclegan_side_by_side_with_torch():
  pytest.importorskip('torch', reason='PyTorch not installed: the side-by-side CLI run is skipped')
  env = clean_env()
  r = subprocess.run(
      [sys.executable, '-m', 'p2p_jax.bench', '--config=configs/cyclegan_horse2zebra.py',
       '--config.image_size=32', '--config.model.generator=resnet_2blocks',
       '--config.model.ngf=4', '--config.model.ndf=4', '--config.batch_size=1', '--torch',
       '--steps=1', '--warmup=1', '--rounds=1'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith('{')]
  assert [l['impl'] for l in lines] == ['p2p_jax', 'torch', 'ratio']
  assert all(l['model'] == 'cyclegan' and l['image_size'] == 32 for l in lines)
  ratio = lines[2]
  assert ratio['p2p_jax_over_torch_images_per_sec'] == pytest.approx(
      lines[0]['images_per_sec'] / lines[1]['images_per_sec'])
  assert len(ratio['round_ratios']) == 1
  assert lines[1]['torch_process'] == 'separate' and lines[1]['host_cpu_util'] > 0


def test_bench_cli_prints_json(tmp_path):
  env = clean_env()
  r = subprocess.run(
      [sys.executable, '-m', 'p2p_jax.bench', '--config=configs/default.py',
       '--config.image_size=32', '--config.model.num_downs=5', '--config.model.ngf=8',
       '--config.model.ndf=8', '--config.batch_size=1', '--steps=1', '--warmup=1'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  line = json.loads([l for l in r.stdout.splitlines() if l.startswith('{')][-1])
  assert line['batch_size'] == 1 and line['image_size'] == 32
  # python -m restarts under tcmalloc where installed on a CPU-only machine.
  tcmalloc = (sys.platform.startswith('linux') and allocator.find_tcmalloc()
              and not allocator.has_accelerator(env))
  assert line['malloc'] == ('tcmalloc' if tcmalloc else 'default')
  assert line['convolutions'] == convolution.step_plan(line['platform']).forms
