"""Compatibility name: pix2pix's train state and step now live in :mod:`p2p_jax.pix2pix`."""

from p2p_jax.pix2pix import (AXIS, Batch, Networks, TrainState, create_train_state,  # noqa: F401
                             learning_rate_fn, make_networks, multi_step, step_key,
                             train_step)
