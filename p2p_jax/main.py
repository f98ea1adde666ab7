"""Command line entry point for p2p_jax.

  python -m p2p_jax.main --config=configs/default.py --workdir=/tmp/p2p [--mode=train]

Modes: ``train`` (default; resumes from the workdir), ``summary`` (layers and exact
parameter counts), ``sample`` (translate with a checkpoint), ``evaluate`` (metrics) and
``train_segmenter`` (train and cache the FCN-score segmenter; see docs/evaluation.md),
``import_torch`` (convert a reference PyTorch generator; see docs/pretrained.md) and
``export`` (the generator alone for inference with only jax; see docs/export.md).
Any config field can be overridden as ``--config.section.field=value``. All logic lives in
importable modules, so everything here also runs from a notebook.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow's C++ start-up banner.

from absl import app, flags, logging
from ml_collections import config_flags

from p2p_jax import distributed
from p2p_jax.cpu import allocator
from p2p_jax.errors import ConfigError, UserError

FLAGS = flags.FLAGS
MODES = ('train', 'summary', 'sample', 'evaluate', 'train_segmenter', 'import_torch',
         'export')

_DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               'configs', 'default.py')


def _unknown_field_message(error: Exception, argv: list[str]) -> str:
  """One line for a ``--config.x=...`` override that names no field of the config."""
  name = str(error).strip('"\'')
  flag = next((a.split('=')[0] for a in argv if a.startswith('--config.') and
               name in a.split('=')[0].split('.')), f'--config....{name}')
  return (f'error: {flag}: the config has no field {name!r}. Fields are listed, one comment '
          'each, in configs/default.py (and the config file given with --config).')


try:  # The config file's overrides (--config.x=...) are read here, from sys.argv.
  config_flags.DEFINE_config_file(
      'config', _DEFAULT_CONFIG, 'Configuration file (configs/*.py). For sample/evaluate the '
      'model and data settings come from the checkpoint; only the `sample` section and '
      'data paths are read from here.', lock_config=True)
except (AttributeError, KeyError) as _e:  # An override naming no config field.
  sys.exit(_unknown_field_message(_e, sys.argv))
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, summaries and samples.')
flags.DEFINE_enum('mode', 'train', MODES, 'What to do.')
flags.DEFINE_string('coordinator_address', None, 'Multi-process jobs: host:port of process '
                    '0 (default: $JAX_COORDINATOR_ADDRESS, or detected under SLURM, Open MPI '
                    'and Cloud TPU). See docs/multihost.md.')
flags.DEFINE_integer('num_processes', None, 'Multi-process jobs: number of processes '
                     '(default: $JAX_NUM_PROCESSES, or detected).')
flags.DEFINE_integer('process_id', None, 'Multi-process jobs: this process, 0..num_processes-1 '
                     '(default: $JAX_PROCESS_ID, or detected).')


class _QuietLibraries:
  """absl log filter: INFO from other libraries (orbax logs every save step by step) is
  dropped; warnings and errors from everyone, and all of p2p_jax's own lines, are kept."""

  _OURS = os.sep + 'p2p_jax' + os.sep

  def filter(self, record) -> bool:
    return record.levelno >= 30 or self._OURS in record.pathname


def _setup_logging() -> None:
  logging.get_absl_handler().addFilter(_QuietLibraries())
  try:
    import tensorflow_datasets as tfds
    tfds.disable_progress_bar()
  except ImportError:
    pass


def _hide_gpus_from_tensorflow() -> None:
  try:
    import tensorflow as tf
    tf.config.experimental.set_visible_devices([], 'GPU')
  except Exception:  # TensorFlow absent or already initialised: nothing to hide.
    pass


def run(config, workdir: str | None, mode: str) -> None:
  if mode == 'summary':
    from p2p_jax import summary
    from p2p_jax.data import model_data
    ch = model_data.channels(config)
    print(summary.summary_text(config, ch.channels_in, ch.channels_out))
    return
  if mode == 'train_segmenter':  # --workdir optional: a run's dataset and size if given.
    from p2p_jax import train_segmenter
    train_segmenter.train_segmenter(config, workdir)
    return
  if not workdir:
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
  elif mode == 'import_torch':  # A reference PyTorch generator -> a checkpoint in workdir.
    from p2p_jax import import_torch
    import_torch.import_generator(config, workdir)
  elif mode == 'export':  # The generator alone for inference; see docs/export.md.
    from p2p_jax import export
    export.export(config, workdir)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  _hide_gpus_from_tensorflow()
  _setup_logging()
  try:
    # Before anything touches JAX's devices: joins a multi-process job, if this is one.
    how = distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                                 FLAGS.process_id)
    logging.info('%s', distributed.describe(how))
    logging.info('malloc: %s', allocator.active_malloc())
    run(FLAGS.config, FLAGS.workdir, FLAGS.mode)
  except UserError as e:
    logging.error('%s', e)
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  except KeyboardInterrupt:
    print('interrupted', file=sys.stderr)
    sys.exit(130)


if __name__ == '__main__':
  # tcmalloc on CPU-only machines where installed: p2p_jax/cpu/allocator.py.
  allocator.restart_with_preferred_malloc(__file__, __spec__ and __spec__.name)
  app.run(main)
