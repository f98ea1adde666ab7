"""User-facing errors. ``main`` prints these as one message, without a traceback.

Kept free of heavy imports so the entry point can catch them before anything else loads.
"""


class UserError(Exception):
  """A mistake the user can fix; the message says how."""


class ConfigError(UserError, ValueError):
  """A configuration that cannot work (bad value, size, batch, ...)."""


class DataError(UserError, ValueError):
  """A data problem: missing directory, bad file, empty split, unknown dataset."""


class CheckpointError(UserError, RuntimeError):
  """No checkpoint where one is needed, or one of a different model."""


class TrainingError(UserError, RuntimeError):
  """Training cannot continue (e.g. a non-finite loss)."""


class DependencyError(UserError, ImportError):
  """An optional dependency that this use needs is not installed; the message names it."""
