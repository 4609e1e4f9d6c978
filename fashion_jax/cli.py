"""What the command-line tools share: flags defined only when run, user errors as one line."""

import functools
import sys
from typing import Callable, Sequence

from absl import app, flags, logging

from fashion_jax import errors


def run(main: Callable, define_flags: Callable, required: Sequence[str] = ()) -> None:
  """Defines the tool's flags (so that tools import together), then runs `main`.

  A ConfigError/DataError/... raised by `main` prints as 'error: ...' with exit status 2,
  never as a traceback from deep inside the library.
  """
  define_flags()
  if required:
    flags.mark_flags_as_required(list(required))

  @functools.wraps(main)
  def guarded(argv):
    logging.set_verbosity(logging.WARNING)
    try:
      return main(argv)
    except errors.USER_ERRORS as e:
      print(f"error: {e}", file=sys.stderr)
      return 2

  app.run(guarded)
