"""``--mode=sample``: translate images with a trained checkpoint; an HTML gallery of results.

  python -m p2p_jax.main --mode=sample --workdir=W [--config.sample.FIELD=VALUE ...]

The checkpoint alone defines the model: ``--config`` is optional (see
:func:`p2p_jax.restore.merge_config` for what is read from it). The eval split is
translated, or every image of ``--config.sample.input_dir`` (images of the *input* side,
e.g. label maps for a labels -> photo run; resized to a square of ``sample.image_size``
with the training pipeline's bicubic resize). Written to
``WORKDIR/translated/step_<N>[_<S>px][_conventional][_<direction>][_<input folder>]/``
(or ``sample.output_dir``), as :class:`p2p_jax.gallery.Writer` lays it out:

* ``<name>.png`` - one image per input: input | output(s) | target (if there is one);
* ``images/<name>_input.png``, ``<name>_output[_k].png``, ``<name>_target.png``;
* ``index.html`` - a gallery table of them with the settings used.

The last line printed is the directory written.

pix2pix inference follows the paper by default (``sample.paper_mode=True``: dropout on,
BatchNorm with the statistics of the batch being translated - batch 1 by default, i.e.
instance normalisation); ``False`` gives the conventional mode (running averages, no
dropout, so every sample of one input is the same). ``sample.seed`` fixes the dropout
noise, and ``sample.num_samples`` > 1 draws several outputs per input. The U-Net is fully
convolutional: ``sample.image_size`` may exceed the training size (any multiple of
``2**num_downs``).

CycleGAN: ``sample.direction`` picks the generator(s): ``AtoB`` (G_A), ``BtoA`` (G_B) or
``both`` (rows named ``AtoB/<name>`` and ``BtoA/<name>`` in one gallery). Each row is
input | translation | reconstruction (the other generator applied to the translation);
the generators are deterministic (instance norm, no dropout), so ``paper_mode``,
``seed`` and ``num_samples`` do not apply. ``sample.input_dir`` holds images of one side:
set ``sample.direction`` to ``AtoB`` (A images) or ``BtoA`` (B images) with it.
"""

from __future__ import annotations

import os
import time

import ml_collections
from absl import logging

from p2p_jax import gallery, gan, images, inference, restore
from p2p_jax.errors import ConfigError, DataError


def sample_size(config: ml_collections.ConfigDict) -> int:
  """The side of the translated images: ``sample.image_size``, or the training size."""
  s = int(config.sample.image_size)
  size = config.image_size if s <= 0 else s
  gan.get_model(config).check_image_size(config, size, what='sample.image_size')
  return size


def default_output_dir(config: ml_collections.ConfigDict, workdir: str, step: int,
                       direction: str = '') -> str:
  s = config.sample
  parts = [f'step_{step}']
  if s.image_size > 0 and s.image_size != config.image_size:
    parts.append(f'{s.image_size}px')
  if not s.paper_mode and not direction:
    parts.append('conventional')
  if direction and direction != 'both':
    parts.append(direction)
  if s.input_dir:
    parts.append(gallery.safe_name(os.path.basename(os.path.normpath(s.input_dir))))
  return os.path.join(os.path.abspath(workdir), 'translated', '_'.join(parts))


def sample(config: ml_collections.ConfigDict | None, workdir: str) -> str:
  """``--mode=sample``: translates the eval split or ``sample.input_dir``; returns the
  output directory (also the last line printed)."""
  from p2p_jax.data import model_data, pipeline  # TensorFlow only from here.

  generators = restore.restore_generators(config, workdir)
  first = next(iter(generators.values()))
  c, step = first.config, first.step
  s = c.sample
  size = sample_size(c)
  chosen = restore.select(generators, c)
  cyclegan = first.inverse is not None
  if s.num_samples < 1:
    raise ConfigError(f'sample.num_samples must be >= 1, got {s.num_samples}.')
  num_samples = s.num_samples
  if cyclegan and num_samples > 1:
    logging.warning('sample.num_samples=%d: CycleGAN\'s generators have no noise; one '
                    'translation per input.', num_samples)
    num_samples = 1
  elif num_samples > 1 and not s.paper_mode:
    logging.warning('sample.num_samples=%d with paper_mode=False: the conventional mode has '
                    'no noise, so all samples of an input are identical.', num_samples)
  if s.input_dir and len(chosen) > 1:
    raise ConfigError('sample.input_dir holds images of one side: set '
                      '--config.sample.direction=AtoB (A images) or BtoA (B images).')
  bs = restore.sample_batch_size(c)
  direction = s.direction if cyclegan else ''
  out_dir = os.path.abspath(s.output_dir) if s.output_dir else default_output_dir(
      c, workdir, step, direction)
  writer = gallery.Writer(out_dir, num_samples,
                          ('translation', 'reconstruction') if cyclegan else ())
  data = None if s.input_dir else model_data.for_config(c)
  what = (os.path.abspath(os.path.expanduser(s.input_dir)) if s.input_dir
          else f'{c.data.dataset} {c.data.eval_split} split')

  t0 = time.time()
  for r in chosen:
    translator = inference.Translator(r, paper_mode=s.paper_mode, seed=s.seed)
    back = inference.Translator(r.inverse) if r.inverse is not None else None
    prefix = f'{r.name}/' if len(chosen) > 1 else ''
    if s.input_dir:
      batches = pipeline.image_folder_batches(s.input_dir, r.channels[0], size, bs,
                                              s.max_images)
    else:
      batches = data.eval_inputs(r.name, bs, size=size, max_examples=s.max_images)
    for b_index, batch in enumerate(batches):
      outs = [translator.translate(batch['input'], b_index, k) for k in range(num_samples)]
      if back is not None:
        outs.append(back.translate(outs[0], b_index))
      for j, name in enumerate(batch['name']):
        writer.add(prefix + name, images.to_uint8(batch['input'][j]),
                   [images.to_uint8(o[j]) for o in outs],
                   images.to_uint8(batch['target'][j]) if 'target' in batch else None)
  if not writer.rows:
    raise DataError(f'Nothing to translate in {what}.')
  elapsed = time.time() - t0
  settings = {'workdir': os.path.abspath(workdir), 'checkpoint step': step, 'inputs': what}
  if cyclegan:
    settings.update({
        'direction': ', '.join(r.name for r in chosen) + ' (rows: input | translation | '
                     'reconstruction)',
        'inference': 'deterministic (instance norm, no dropout)'})
    mode = 'deterministic'
  else:
    settings.update({
        'direction': c.data.direction,
        'inference': ('paper (dropout on, test-batch BatchNorm statistics)' if s.paper_mode
                      else 'conventional (running averages, no dropout)'),
        'seed': s.seed, 'samples per input': num_samples})
    mode = f'{"paper" if s.paper_mode else "conventional"} mode, seed {s.seed}'
  settings.update({'batch size': bs, 'image size': f'{size} px (trained at {c.image_size} px)',
                   'written': time.strftime('%Y-%m-%d %H:%M:%S')})
  writer.finish(title=f'p2p_jax translations, step {step}', settings=settings,
                display_width=max(size, 128) if size < 128 else None)
  n = len(writer.rows)
  logging.info('translated %d image(s) in %.1f s', n, elapsed)
  print(f'translated {n} image(s) from {what} at {size} px with the checkpoint of '
        f'step {step} ({mode}); gallery: {os.path.join(out_dir, "index.html")}', flush=True)
  print(out_dir, flush=True)
  return out_dir
