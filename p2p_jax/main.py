"""Command line entry point for p2p_jax.

  python -m p2p_jax.main --config=configs/default.py --workdir=/tmp/p2p [--mode=train]

Modes: ``train`` (default; resumes from the workdir), ``summary`` (layers and exact
parameter counts), ``sample`` (translate with a checkpoint) and ``evaluate`` (metrics).
Any config field can be overridden as ``--config.section.field=value``. All logic lives in
importable modules, so everything here also runs from a notebook.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
MODES = ('train', 'summary', 'sample', 'evaluate')

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               'configs', 'default.py')
config_flags.DEFINE_config_file(
    'config', _DEFAULT_CONFIG, 'Configuration file (configs/*.py). For sample/evaluate the '
    'model and data settings come from the checkpoint; only the `sample` section and '
    'data paths are read from here.', lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, summaries and samples.')
flags.DEFINE_enum('mode', 'train', MODES, 'What to do.')


def _user_errors() -> tuple[type[Exception], ...]:
  from p2p_jax.checkpoints import CheckpointError
  from p2p_jax.models.factory import ConfigError
  from p2p_jax.train import TrainingError
  errors = [ConfigError, CheckpointError, TrainingError]
  try:
    from p2p_jax.data.sources import DataError
    errors.append(DataError)
  except ImportError:
    pass
  return tuple(errors)


def _hide_gpus_from_tensorflow() -> None:
  try:
    import tensorflow as tf
    tf.config.experimental.set_visible_devices([], 'GPU')
  except Exception:  # TensorFlow absent or already initialised: nothing to hide.
    pass


def run(config, workdir: str | None, mode: str) -> None:
  import jax
  logging.info('JAX process %d/%d, local devices: %s', jax.process_index(),
               jax.process_count(), jax.local_devices())
  if mode == 'summary':
    from p2p_jax import summary
    from p2p_jax.data import sources
    ch = sources.io_channels(config)
    print(summary.summary_text(config, ch.input, ch.target))
    return
  if not workdir:
    from p2p_jax.models.factory import ConfigError
    raise ConfigError(f'--workdir is required for --mode={mode}.')
  if mode == 'train':
    from p2p_jax import train
    train.train_and_evaluate(config, workdir)
  elif mode == 'sample':
    from p2p_jax import sample
    sample.sample(config, workdir)
  elif mode == 'evaluate':
    from p2p_jax import evaluate
    evaluate.evaluate(config, workdir)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  _hide_gpus_from_tensorflow()
  try:
    run(FLAGS.config, FLAGS.workdir, FLAGS.mode)
  except _user_errors() as e:
    logging.error('%s', e)
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  except KeyboardInterrupt:
    print('interrupted', file=sys.stderr)
    sys.exit(130)


if __name__ == '__main__':
  app.run(main)
