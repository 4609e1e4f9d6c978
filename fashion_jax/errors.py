"""Errors that describe a user's input (config, data, workdir) rather than a bug.

The entry points print these as one clear message instead of a traceback.
"""


class ConfigError(ValueError):
  """A config field with a bad value; the message names the field."""


class DataError(ValueError):
  """A dataset that cannot be used; the message names the file, row or column."""


class CheckpointMismatchError(ValueError):
  """A workdir whose checkpoint does not fit the current config."""


class CheckpointReadError(CheckpointMismatchError):
  """A checkpoint whose files cannot be read (damaged after it was written)."""


class WorkdirError(OSError):
  """The workdir cannot be written (permissions, a full disk); nothing written is lost."""


USER_ERRORS = (ConfigError, DataError, CheckpointMismatchError, WorkdirError,
               FloatingPointError)
