"""``--mode=export``: the generator alone, for inference without the training code.

  python -m p2p_jax.main --mode=export --workdir=W [--config.sample.step=N]
                         [--config.sample.output_dir=DIR]

Restores the generator of a checkpoint (``sample.step``, latest by default) and writes to
``W/export/step_<N>/`` (or ``sample.output_dir``; CycleGAN: one such directory per
generator, ``AtoB/`` and ``BtoA/``, or the one ``sample.direction`` names):

* ``generator.npz``: the generator's params and BatchNorm running statistics (no
  optimiser state, no discriminator), keys like ``params/down_0/conv/kernel``;
* ``generate_conventional.jaxexport`` and ``generate_paper.jaxexport``: serialized
  :mod:`jax.export` modules of ``generate(params, batch_stats, x, seed, index, sample)``
  for ``x`` of shape ``[b, S, S, C]`` (``b`` symbolic: any batch; ``S`` the training
  size), lowered for CPU, CUDA and TPU with plain XLA convolutions (no backend's tuning;
  same values up to float rounding);
* ``export.json``: step, size, channels, data set, direction, generator ('G'; CycleGAN
  'AtoB' or 'BtoA'), platforms, versions;
* ``exported.py``: a copy of :mod:`p2p_jax.exported`, the loader, which needs only jax,
  numpy and Pillow.

The modes are those of :mod:`p2p_jax.inference`; the dropout key of the paper mode is
:func:`p2p_jax.inference.sample_key` ``(seed, index, sample)``, computed inside the module.
The last line printed is the directory written.
"""

from __future__ import annotations

import json
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from p2p_jax import convolution, exported, inference, restore, rng

PLATFORMS = ('cpu', 'cuda', 'tpu')


def flatten(tree: dict, prefix: str = '') -> dict:
  """{'a': {'b': array}} -> {'a/b': numpy array} (the inverse of exported.unflatten)."""
  flat = {}
  for k, v in tree.items():
    name = f'{prefix}{k}'
    if isinstance(v, dict) or hasattr(v, 'items'):
      flat.update(flatten(dict(v), name + '/'))
    else:
      flat[name] = np.asarray(v)
  return flat


def export_generate(generator, params, batch_stats, image_size: int, channels: int,
                    paper_mode: bool, platforms=PLATFORMS) -> jax.export.Exported:
  """``generate(params, batch_stats, x, seed, index, sample)`` of ``generator`` as a
  :class:`jax.export.Exported` with a symbolic batch dimension."""
  generate = inference.make_generate_fn(generator, paper_mode)

  def fn(params, batch_stats, x, seed, index, sample):
    key = jax.random.fold_in(jax.random.fold_in(
        jax.random.key(seed, impl=rng.PRNG_IMPL), index), sample)
    return generate(params, batch_stats, x, key)

  spec = lambda t: jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), t)  # noqa: E731
  x = jax.ShapeDtypeStruct(
      jax.export.symbolic_shape(f'b, {image_size}, {image_size}, {channels}'), jnp.float32)
  i32 = jax.ShapeDtypeStruct((), jnp.int32)
  # Plain XLA convolutions: the CPU forms specialise on the batch size, which is symbolic
  # here, and an export for every backend carries no backend's tuning.
  with convolution.use_forms('xla'):
    return jax.export.export(jax.jit(fn), platforms=tuple(platforms))(
        spec(params), spec(batch_stats), x, i32, i32, i32)


def default_output_dir(workdir: str, step: int) -> str:
  return os.path.join(os.path.abspath(workdir), 'export', f'step_{step}')


def export(config: ml_collections.ConfigDict | None, workdir: str) -> str:
  """``--mode=export``; returns the directory written (also the last line printed).

  CycleGAN: the generator(s) ``sample.direction`` picks; with ``both`` (the default) G_A
  goes to ``<dir>/AtoB/`` and G_B to ``<dir>/BtoA/``, each a complete export directory."""
  generators = restore.restore_generators(config, workdir)
  chosen = restore.select(generators, next(iter(generators.values())).config)
  c, step = chosen[0].config, chosen[0].step
  out_dir = (os.path.abspath(os.path.expanduser(c.sample.output_dir)) if c.sample.output_dir
             else default_output_dir(workdir, step))
  for r in chosen:
    export_one(r, os.path.join(out_dir, r.name) if len(chosen) > 1 else out_dir)
  print(out_dir, flush=True)
  return out_dir


def export_one(restored: restore.Restored, out_dir: str) -> None:
  """Writes one generator's export directory (see the module docstring)."""
  c, workdir = restored.config, restored.workdir
  os.makedirs(out_dir, exist_ok=True)
  cin, cout = restored.channels
  weights = flatten({'params': restored.params, 'batch_stats': restored.batch_stats})
  np.savez(os.path.join(out_dir, exported.WEIGHTS), **weights)
  for mode in exported.MODES:
    exp = export_generate(restored.generator, restored.params, restored.batch_stats,
                          c.image_size, cin, paper_mode=(mode == 'paper'))
    with open(os.path.join(out_dir, exported.module_file(mode)), 'wb') as f:
      f.write(exp.serialize())
  meta = {
      'step': restored.step, 'image_size': c.image_size, 'channels': [cin, cout],
      'dataset': c.data.dataset, 'direction': c.data.direction, 'generator': restored.name,
      'platforms': list(PLATFORMS), 'modes': list(exported.MODES),
      'signature': 'generate(params, batch_stats, x[b, S, S, C] float32 in [-1, 1], '
                   'seed int32, index int32, sample int32) -> [b, S, S, C_out] in [-1, 1]',
      'workdir': os.path.abspath(workdir), 'jax_version': jax.__version__,
      'num_params': int(sum(v.size for k, v in weights.items() if k.startswith('params/'))),
  }
  with open(os.path.join(out_dir, exported.META), 'w') as f:
    json.dump(meta, f, indent=2)
    f.write('\n')
  shutil.copyfile(exported.__file__, os.path.join(out_dir, 'exported.py'))
  logging.info('exported step %d (%d params) to %s', restored.step, meta['num_params'], out_dir)
  print(f'exported the generator {restored.name} of step {restored.step} ({c.image_size} px, '
        f'{cin} -> {cout} channels, {"/".join(PLATFORMS)}) to {out_dir}', flush=True)
