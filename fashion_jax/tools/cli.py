"""What the command-line tools share: one way to run, one error format.

Each tool defines its flags only when it runs (so that tools import together), and a
problem with the user's input (a ConfigError, DataError, ...) ends it with one line on
stderr, `fashion_jax: <Type>: <message>`, and exit status 2, never with a traceback
from deep inside the library.
"""

import functools
import logging as std_logging
import sys
from typing import Callable, Sequence

from absl import app, flags, logging

from fashion_jax import errors


class _QuietLibraries(std_logging.Filter):
  """Drops INFO records of Orbax, which logs several lines per checkpoint save."""

  def filter(self, record) -> bool:
    return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def report_user_error(error: Exception) -> int:
  """Prints a user error in the tools' one format; returns the exit status."""
  print(f"fashion_jax: {type(error).__name__}: {error}", file=sys.stderr)
  return 2


def run(main: Callable, define_flags: Callable, required: Sequence[str] = (),
        verbosity: int = logging.WARNING) -> None:
  """Defines the tool's flags, then runs `main(argv)` under absl; `verbosity` is the
  log level unless --verbosity is given (training: INFO; the other tools: WARNING)."""
  define_flags()
  if required:
    flags.mark_flags_as_required(list(required))

  @functools.wraps(main)
  def guarded(argv):
    if not flags.FLAGS["verbosity"].present:
      logging.set_verbosity(verbosity)
    logging.get_absl_handler().addFilter(_QuietLibraries())
    try:
      return main(argv)
    except errors.USER_ERRORS as e:
      return report_user_error(e)

  app.run(guarded)
