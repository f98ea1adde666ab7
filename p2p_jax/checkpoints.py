"""Orbax checkpoints in ``WORKDIR/checkpoints/<step>/``: the full train state and the config.

Each checkpoint holds ``state`` (the model's whole train state: parameters, statistics,
Adam states, the step, the base key and, for CycleGAN, the image pools) and ``config``
(the run's config as JSON plus the data-derived channel counts), so a sampler needs nothing but the workdir.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from p2p_jax.errors import CheckpointError


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), 'checkpoints')


class Checkpointer:
  """Saves and restores (state, config) pairs; saves are asynchronous."""

  def __init__(self, workdir: str, max_to_keep: int = 3, create: bool = True):
    self.directory = checkpoint_dir(workdir)
    if not create and not os.path.isdir(self.directory):
      raise CheckpointError(f'No checkpoints in {workdir!r} (expected {self.directory}/<step>/). '
                            'Train first: python -m p2p_jax.main --workdir=...')
    self._mngr = ocp.CheckpointManager(
        self.directory, item_names=('state', 'config'),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create))

  def latest_step(self) -> int | None:
    return self._mngr.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._mngr.all_steps())

  def save(self, step: int, state: Any, config: ml_collections.ConfigDict,
           channels: tuple[int, int]) -> None:
    meta = {'config': config.to_dict(), 'channels': list(channels)}
    self._mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                  config=ocp.args.JsonSave(meta)), force=True)

  def _step(self, step: int | None) -> int:
    steps = self.all_steps()
    if not steps:
      raise CheckpointError(f'No checkpoint found in {self.directory}. Train first.')
    if step is None or step < 0:
      return max(steps)
    if step not in steps:
      raise CheckpointError(f'No checkpoint for step {step} in {self.directory}; '
                            f'available: {sorted(steps)}.')
    return step

  def restore_meta(self, step: int | None = None) -> tuple[int, ml_collections.ConfigDict,
                                                           tuple[int, int]]:
    """(step, config, (input_channels, target_channels)) of a checkpoint."""
    step = self._step(step)
    meta = self._mngr.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))
    meta = meta.config
    return step, ml_collections.ConfigDict(meta['config']), tuple(meta['channels'])

  def restore_state(self, abstract_state: Any, step: int | None = None) -> Any:
    step = self._step(step)
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), abstract_state)
    out = self._mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target)))
    return out.state

  def restore_fields(self, abstract_fields: dict[str, Any], step: int | None = None
                     ) -> dict[str, Any]:
    """Only some top-level fields of a checkpoint's state (e.g. a generator's weights,
    not the discriminators, Adam states or image pools), as numpy arrays:
    ``abstract_fields`` maps field names to trees of shapes and dtypes."""
    step = self._step(step)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), abstract_fields)
    restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
    out = self._mngr.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
        target, restore_args=restore_args, partial_restore=True)))
    return dict(out.state)

  def wait(self) -> None:
    self._mngr.wait_until_finished()

  def close(self) -> None:
    self._mngr.close()
