"""Multi-process training on one machine: 2 processes x 2 fake CPU devices (gloo).

The default config, tiny (32 px, ngf/ndf 8, 8 embedded training pairs), 8 steps of global
batch 4 in dispatches of 2 steps:
  - 2 processes (``python -m p2p_jax.main --coordinator_address=... --num_processes=2
    --process_id=i``) end with the same state, equal within float rounding (losses and
    parameters) to 1 process x 4 devices fed the same global batches; one checkpoint copy
    on disk; only process 0 writes samples and TensorBoard events;
  - SIGTERM to one of the 2 processes: both save the same step and exit 130 with a message;
    resuming both ends with exactly the state of the uninterrupted job;
  - SIGKILL of a single-process run after a checkpoint: the resumed run ends bit-identical
    (parameters and optimiser state) to an uninterrupted run.
Processes are started by ``tests/multihost_worker.py`` (the real training loop, with
test-side instruments) or by ``p2p_jax.main`` itself.
"""

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, 'tests', 'multihost_worker.py')
STEPS = 8
LR = 2e-4
TINY = {
    'image_size': 32, 'batch_size': 4, 'num_train_steps': STEPS, 'steps_per_dispatch': 2,
    'checkpoint_every_steps': 1000, 'log_every_steps': 1, 'sample_every_steps': 1000,
    'num_sample_images': 2, 'data.load_size': 36, 'data.embedded_resolution': 36,
    'data.embedded_num_train': 8, 'data.embedded_num_test': 4, 'data.shuffle_buffer': 8,
    'model.num_downs': 5, 'model.ngf': 8, 'model.ndf': 8,
}
TIMEOUT = 600  # A hang fails the test instead of blocking CI.


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def cli_flags(overrides):
  return [f'--config.{k}={v}' for k, v in overrides.items()]


def env_with(devices: int) -> dict:
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}',
             JAX_PLATFORMS='cpu', PYTHONUNBUFFERED='1')
  for k in ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID'):
    env.pop(k, None)
  return env


def start(cmd, log_path, devices):
  log = open(log_path, 'w')
  return subprocess.Popen(cmd, cwd=ROOT, env=env_with(devices), stdout=log,
                          stderr=subprocess.STDOUT, text=True)


def job(workdir, tmp, *, processes, devices, entry='main', overrides=None, extra=(),
        tag='run'):
  """Starts ``processes`` processes of one job; returns (procs, log paths)."""
  overrides = dict(TINY, **(overrides or {}))
  port = free_port()
  procs, logs = [], []
  for i in range(processes):
    if entry == 'main':
      cmd = [sys.executable, '-m', 'p2p_jax.main', f'--workdir={workdir}',
             *cli_flags(overrides), *extra]
    else:
      cmd = [sys.executable, WORKER, f'--workdir={workdir}',
             f'--overrides={json.dumps(overrides)}', *extra]
    if processes > 1:
      cmd += [f'--coordinator_address=localhost:{port}', f'--num_processes={processes}',
              f'--process_id={i}']
    logs.append(os.path.join(tmp, f'{tag}_{i}.log'))
    procs.append(start(cmd, logs[-1], devices))
  return procs, logs


def wait_all(procs, logs, timeout=TIMEOUT):
  deadline = time.time() + timeout
  codes = []
  for p in procs:
    try:
      codes.append(p.wait(timeout=max(1, deadline - time.time())))
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail('timeout; logs:\n' + '\n'.join(read(f)[-3000:] for f in logs))
  return codes, [read(f) for f in logs]


def read(path):
  with open(path) as f:
    return f.read()


def checkpoint_steps(workdir):
  d = os.path.join(workdir, 'checkpoints')
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def load_checkpoint(workdir, step=None):
  """(step, {path: numpy array}) of a checkpoint's train state."""
  import orbax.checkpoint as ocp
  mngr = ocp.CheckpointManager(os.path.join(workdir, 'checkpoints'),
                               item_names=('state', 'config'))
  step = mngr.latest_step() if step is None else step
  state = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore())).state
  flat = jax.tree_util.tree_flatten_with_path(state)[0]
  return step, {jax.tree_util.keystr(k): np.asarray(v) for k, v in flat}


def scalars(workdir, tag):
  """Per-step values of a TensorBoard scalar written by process 0."""
  import tensorflow as tf
  out = {}
  for f in glob.glob(os.path.join(workdir, 'events.out.tfevents*')):
    for e in tf.compat.v1.train.summary_iterator(f):
      for v in e.summary.value:
        if v.tag == tag:
          out[e.step] = float(tf.make_ndarray(v.tensor))
  return [out[s] for s in sorted(out)]


def fingerprints(log_text):
  return [line.rsplit('fingerprint ', 1)[1].split()[0]
          for line in log_text.splitlines() if 'final state fingerprint' in line]


def assert_states_close(a, b, steps):
  """Adam moves a weight by ~lr per step whatever its gradient's size, so weights of runs
  that differ by float rounding agree within 2 lr per step; nearly all agree far closer."""
  assert a.keys() == b.keys()
  loose = total = 0
  for k in a:
    d = np.abs(a[k].astype(np.float64) - b[k].astype(np.float64))
    assert d.max() <= 2 * LR * steps + 1e-6 or 'opt_state' in k, (k, d.max())
    if 'params' in k and 'opt_state' not in k:
      loose += int((d > 5e-5).sum())
      total += d.size
  assert loose <= 1e-3 * total, (loose, total)


@pytest.fixture(scope='module')
def two_by_two(tmp_path_factory):
  """The 2-process job and its 1-process x 4-device reference, run at the same time. All
  processes share this test worker's TFDS_DATA_DIR (tests/conftest.py): in the job,
  process 0 prepares the dataset while process 1 waits at a barrier."""
  tmp = str(tmp_path_factory.mktemp('jobs'))
  multi, ref = os.path.join(tmp, 'multi'), os.path.join(tmp, 'ref')
  procs, logs = job(multi, tmp, processes=2, devices=2, tag='multi')
  rprocs, rlogs = job(ref, tmp, processes=1, devices=4, entry='worker',
                      extra=['--emulate_processes=2'], tag='ref')
  codes, texts = wait_all(procs + rprocs, logs + rlogs)
  assert codes == [0, 0, 0], '\n'.join(t[-3000:] for t in texts)
  return multi, ref, texts[:2], texts[2]


@pytest.mark.slow
def test_two_processes_train_one_model(two_by_two):
  multi, ref, (log0, log1), ref_log = two_by_two
  assert 'process 0 of 2: 2 local / 4 global devices' in log0
  assert 'process 1 of 2: 2 local / 4 global devices' in log1
  assert 'process 0 of 1: 4 local / 4 global devices' in ref_log
  # Both processes hold the same replica at the end (a per-host mesh would not: their
  # data shards differ).
  (f0,), (f1,) = fingerprints(log0), fingerprints(log1)
  assert f0 == f1
  # One checkpoint copy on disk, the final one; only process 0 wrote samples and events.
  assert checkpoint_steps(multi) == [STEPS]
  assert os.listdir(os.path.join(multi, 'samples')) == [f'step_{STEPS:07d}.png']
  assert 'samples:' in log0 and 'samples:' not in log1
  assert len(glob.glob(os.path.join(multi, 'events.out.tfevents*'))) == 1
  assert os.path.exists(os.path.join(multi, 'train_stats.json'))
  # The same training as 1 process x 4 devices on the same global batches.
  for tag in ('d_loss', 'g_l1', 'g_gan'):
    a, b = scalars(multi, tag), scalars(ref, tag)
    assert len(a) == STEPS and len(b) == STEPS
    np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-5, err_msg=tag)
  _, multi_state = load_checkpoint(multi)
  _, ref_state = load_checkpoint(ref)
  assert_states_close(multi_state, ref_state, STEPS)


@pytest.mark.slow
def test_sigterm_to_one_process_saves_both_and_resumes_exactly(two_by_two, tmp_path):
  multi, _, _, _ = two_by_two
  workdir, tmp = str(tmp_path / 'w'), str(tmp_path)
  procs, logs = job(workdir, tmp, processes=2, devices=2, entry='worker',
                    extra=['--step_sleep=2'], tag='term')
  deadline = time.time() + TIMEOUT
  while 'dispatched' not in read(logs[1]):  # Process 1 has run its first dispatch.
    assert procs[1].poll() is None, read(logs[1])[-3000:]
    assert time.time() < deadline, read(logs[1])[-3000:]
    time.sleep(0.2)
  procs[1].send_signal(signal.SIGTERM)
  codes, texts = wait_all(procs, logs)
  assert codes == [130, 130], '\n'.join(t[-3000:] for t in texts)
  saved = [[int(line.split('checkpoint at step ')[1].split()[0]) for line in t.splitlines()
            if 'interrupted: saving checkpoint at step' in line] for t in texts]
  assert saved[0] == saved[1] and len(saved[0]) == 1, saved
  step = saved[0][0]
  assert 0 < step < STEPS
  assert checkpoint_steps(workdir) == [step]

  procs, logs = job(workdir, tmp, processes=2, devices=2, tag='resume')
  codes, texts = wait_all(procs, logs)
  assert codes == [0, 0], '\n'.join(t[-3000:] for t in texts)
  assert all(f'resuming from step {step}' in t for t in texts)
  _, resumed = load_checkpoint(workdir, STEPS)
  _, straight = load_checkpoint(multi, STEPS)
  for k in straight:
    np.testing.assert_array_equal(resumed[k], straight[k], err_msg=k)


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_is_bit_identical(tmp_path):
  from conftest import tiny_config
  from p2p_jax import train
  one = {'num_train_steps': 1000, 'checkpoint_every_steps': 2}
  workdir, tmp = str(tmp_path / 'w'), str(tmp_path)
  (proc,), (log,) = job(workdir, tmp, processes=1, devices=2, entry='worker', overrides=one,
                        extra=['--step_sleep=1'], tag='kill')
  deadline = time.time() + TIMEOUT
  while not checkpoint_steps(workdir):
    assert proc.poll() is None, read(log)[-3000:]
    assert time.time() < deadline, read(log)[-3000:]
    time.sleep(0.1)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  step = max(checkpoint_steps(workdir))
  total = step + 2

  (proc,), (log,) = job(workdir, tmp, processes=1, devices=2,
                        overrides={'num_train_steps': total}, tag='resume')
  (code,), (text,) = wait_all([proc], [log])
  assert code == 0, text[-3000:]
  assert f'resuming from step {step}' in text
  straight_dir = str(tmp_path / 'straight')  # This process has the same 2 fake devices.
  config = tiny_config(**dict(TINY, num_train_steps=total))
  train.train_and_evaluate(config, straight_dir)
  _, resumed = load_checkpoint(workdir, total)
  _, straight = load_checkpoint(straight_dir, total)
  assert resumed.keys() == straight.keys()
  for k in straight:  # Parameters, batch statistics and both Adam states.
    np.testing.assert_array_equal(resumed[k], straight[k], err_msg=k)
