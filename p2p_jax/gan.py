"""The models p2p_jax trains, by name (``config.model.name``), and what they share.

Each model is one module that reads like its paper (``p2p_jax.pix2pix``,
``p2p_jax.cyclegan``) and exposes the same few functions, which are all that the training
loop, :class:`p2p_jax.parallel.DataParallel`, checkpoints, ``--mode=summary`` and the
bench use:

* ``TrainState`` (a pytree; checkpointed whole), ``AXIS`` (the device axis name),
  ``PER_DEVICE_FIELDS`` (state fields with one entry per device, e.g. CycleGAN's image
  pools; the rest is replicated) and ``METRICS`` (the names ``train_step`` reports);
* ``check_image_size(config, height, width=None, what='image_size')``;
* ``build(config, data, *, multi_device) -> Networks`` (the static
  modules, optimisers and loss settings) and ``init_state(nets, data, rng, num_devices)``;
* ``train_step(state, batch, *, nets, axis_name)`` and ``multi_step`` (pure, per device);
* ``progress(metrics) -> str`` (the log line), ``param_counts(state)`` and
  ``network_params(config, data)`` (for the summary), ``sample_grid(nets, state, batch,
  key)`` (training's sample images);
* ``GENERATOR_FIELDS`` (the state fields translation needs; restored alone) and
  ``generators(nets, fields, data)`` (the translating generators by name: pix2pix 'G',
  CycleGAN 'AtoB' and 'BtoA'), for sampling, evaluation and export.

The run's length and lr schedule are the same for every model (``p2p_jax.schedules``: an
epoch is ``DataInfo.steps_per_epoch`` steps). No TensorFlow here or in the model modules.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

import ml_collections

from p2p_jax.errors import ConfigError

MODELS = {'pix2pix': 'p2p_jax.pix2pix', 'cyclegan': 'p2p_jax.cyclegan'}


@dataclasses.dataclass(frozen=True)
class DataInfo:
  """What a model needs to know of its data: channels and the epoch length.

  pix2pix: input and target channels (after ``data.direction``); CycleGAN: channels of A
  and of B."""

  channels_in: int
  channels_out: int
  steps_per_epoch: int = 1


def model_name(config: ml_collections.ConfigDict) -> str:
  name = config.model.get('name', 'pix2pix')
  if name not in MODELS:
    raise ConfigError(f'model.name must be one of {", ".join(MODELS)}, got {name!r}.')
  return name


def get_model(config_or_name: ml_collections.ConfigDict | str) -> ModuleType:
  """The model module named by ``config.model.name`` (default 'pix2pix')."""
  name = config_or_name if isinstance(config_or_name, str) else model_name(config_or_name)
  if name not in MODELS:
    raise ConfigError(f'model.name must be one of {", ".join(MODELS)}, got {name!r}.')
  return importlib.import_module(MODELS[name])
