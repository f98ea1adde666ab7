"""One process of a multi-process test job: the real ``train.train_and_evaluate``.

  python tests/multihost_worker.py --workdir=W --overrides='{"batch_size": 4}'
      [--coordinator_address=localhost:PORT --num_processes=2 --process_id=I]
      [--emulate_processes=2] [--step_sleep=0.5]

Test-side instruments, none of which changes what the training computes:
  --emulate_processes=N  one process feeds, per step, the concatenation of the batches that
                         N processes would read (the single-process reference of a job
                         with N processes and the same global batch);
  --step_sleep=S         sleeps S seconds after each dispatch and prints 'dispatched'
                         (room to send a signal).
Exits 130 after an interrupt (as ``p2p_jax.main`` does), 0 when training finished.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'configs'))
sys.path.insert(0, ROOT)


def main():
  p = argparse.ArgumentParser()
  p.add_argument('--workdir', required=True)
  p.add_argument('--overrides', default='{}')
  p.add_argument('--coordinator_address')
  p.add_argument('--num_processes', type=int)
  p.add_argument('--process_id', type=int)
  p.add_argument('--emulate_processes', type=int, default=1)
  p.add_argument('--step_sleep', type=float, default=0.0)
  args = p.parse_args()

  from p2p_jax import distributed
  how = distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
  from absl import logging
  logging.set_verbosity(logging.INFO)
  logging.info('%s', distributed.describe(how))

  import default
  from p2p_jax import parallel, train
  from p2p_jax.data import pipeline

  config = default.get_config()
  for k, v in json.loads(args.overrides).items():
    target = config
    *path, leaf = k.split('.')
    for q in path:
      target = target[q]
    target[leaf] = v

  if args.step_sleep:
    step = parallel.DataParallel.step

    def slow_step(self, state, batch):
      out = step(self, state, batch)
      print('dispatched', flush=True)
      time.sleep(args.step_sleep)
      return out
    parallel.DataParallel.step = slow_step

  if args.emulate_processes > 1:
    n = args.emulate_processes
    train_dataset = pipeline.train_dataset
    tf = pipeline.tf

    def emulated(config, source, per_process_batch, *, start_step=0, process_index=0,
                 process_count=1):
      assert process_count == 1
      shards = [train_dataset(config, source, per_process_batch // n, start_step=start_step,
                              process_index=i, process_count=n) for i in range(n)]
      axis = 1 if config.steps_per_dispatch > 1 else 0
      return tf.data.Dataset.zip(tuple(shards)).map(
          lambda *bs: {k: tf.concat([b[k] for b in bs], axis) for k in bs[0]})
    pipeline.train_dataset = emulated

  try:
    train.train_and_evaluate(config, args.workdir)
  except KeyboardInterrupt:
    print('interrupted', file=sys.stderr)
    sys.exit(130)


if __name__ == '__main__':
  main()
