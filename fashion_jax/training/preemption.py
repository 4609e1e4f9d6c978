"""Stop requests (SIGTERM, Ctrl-C, a TPU maintenance event) turned into a clean stop.

The training loop asks `should_stop(step)` after every step; when it says yes, the loop
writes a checkpoint of that step and returns, so re-running the same command resumes
exactly there.

One process: SIGTERM and SIGINT set a flag (a second Ctrl-C stops at once, the usual
escape). Several processes: they must all stop after the same step, because the
checkpoint is written collectively; JAX's preemption sync point (the coordination
service, which receives the SIGTERM a cluster manager sends) picks that step.
"""

import signal
import threading

import jax
from absl import logging

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
  """Catches stop signals while a `with` block trains."""

  def __init__(self):
    self.signal_name: str | None = None
    self._previous = {}

  def __enter__(self) -> "StopRequest":
    # Signal handlers can only be set from the main thread (tests may train elsewhere).
    # Several processes: JAX's coordination service owns SIGTERM.
    if threading.current_thread() is threading.main_thread() and jax.process_count() == 1:
      for sig in _SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def _handle(self, signum, frame) -> None:
    del frame
    name = signal.Signals(signum).name
    if self.signal_name is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # Second Ctrl-C: the user really wants out now.
    self.signal_name = name
    logging.warning("%s received: stopping after this step and saving a checkpoint "
                    "(Ctrl-C again to stop at once).", name)

  def should_stop(self, step: int) -> bool:
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      if multihost_utils.reached_preemption_sync_point(step):
        self.signal_name = self.signal_name or "preemption notice"
    return self.signal_name is not None
