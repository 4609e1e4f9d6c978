"""What a training run shows: a progress bar on a terminal, plain lines elsewhere.

On a terminal: a tqdm bar (step/total, loss, learning rate, images/s, ETA), with run
messages and a compact table at each evaluation printed above it. When stdout is not
a terminal (nohup, CI, a notebook's log): one plain line per log step. Every line also
goes to `<workdir>/train.log`; every scalar goes to TensorBoard. Only process 0
prints. absl's line per step and per scalar appears only with --verbosity=1.
"""

import sys
import time

from absl import logging

from fashion_jax import workdir as workdir_lib
from fashion_jax.writers import metric_writers

COUNT_METRICS = ("n", "excluded", "unreadable")  # Row counts, printed as integers.


def format_metrics_table(metrics: dict[str, float]) -> str:
  """'split/task/metric' values as one line per split and task."""
  rows = {}
  for key, value in metrics.items():
    split, task, name = key.split("/", 2)
    rows.setdefault((split, task), {})[name] = value
  return "\n".join(
      f"  {split:<5} {task:<16} " + "  ".join(
          f"{k}={int(v)}" if k in COUNT_METRICS else f"{k}={v:.4f}" for k, v in values.items())
      for (split, task), values in rows.items())


def metric_writer(workdir: str, is_chief: bool):
  """TensorBoard event files on process 0; absl lines of every scalar only when verbose."""
  writers = [metric_writers.SummaryWriter(workdir)] if is_chief else []
  if logging.get_verbosity() >= logging.DEBUG:
    writers.append(metric_writers.LoggingWriter())
  return metric_writers.MultiWriter(writers)


def _duration(seconds: float) -> str:
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class TrainingConsole:
  """The console of one training run (see the module docstring)."""

  def __init__(self, workdir: str, total_steps: int, start_step: int, batch_size: int,
               enabled: bool = True, stream=None, interactive: bool | None = None):
    self.enabled = enabled
    self.stream = stream or sys.stdout
    self.interactive = (self.stream.isatty() if interactive is None else interactive)
    self.total_steps, self.batch_size = total_steps, batch_size
    self._last = (time.perf_counter(), start_step)
    self._started = self._last
    self._log_path = workdir_lib.path(workdir, workdir_lib.TRAIN_LOG)
    self._bar = None
    if enabled and self.interactive:
      from tqdm import tqdm
      self._bar = tqdm(total=total_steps, initial=start_step, file=self.stream, unit="step",
                       dynamic_ncols=True, leave=True, smoothing=0.1)

  def message(self, text: str) -> None:
    """A line for the user: printed above the bar, and kept in train.log."""
    if not self.enabled:
      return
    if self._bar is not None:
      self._bar.write(text, file=self.stream)
    else:
      print(text, file=self.stream, flush=True)
    self._write_log(text)

  def announce(self, text: str) -> None:
    """A line about this process's run (start, resume, stop): process 0 shows it as a
    message; the others log it, so every host's log says what that host did."""
    if self.enabled:
      self.message(text)
    else:
      logging.info("%s", text)

  def _write_log(self, text: str) -> None:
    with open(self._log_path, "a") as log:
      log.write(text + "\n")

  def advance(self, step: int) -> None:
    """Called after every step: moves the bar."""
    if self._bar is not None:
      self._bar.update(step - self._bar.n)

  def log_step(self, step: int, summary: dict[str, float]) -> float:
    """The line of a log step (loss, lr, speed, ETA); returns the images/s since the last."""
    now = time.perf_counter()
    last_time, last_step = self._last
    images_per_sec = (step - last_step) * self.batch_size / max(now - last_time, 1e-9)
    self._last = (now, step)
    if not self.enabled:
      return images_per_sec
    loss, lr = summary.get("loss/total", float("nan")), summary.get("learning_rate", 0.0)
    started_time, started_step = self._started
    seconds_per_step = (now - started_time) / max(step - started_step, 1)
    eta = _duration(seconds_per_step * (self.total_steps - step))
    if self._bar is not None:
      self._bar.set_postfix_str(f"loss {loss:.4f}  lr {lr:.2e}  {images_per_sec:.1f} img/s",
                                refresh=False)
      self.advance(step)
      self._write_log(self._line(step, summary, loss, lr, images_per_sec, eta))
    else:
      self.message(self._line(step, summary, loss, lr, images_per_sec, eta))
    return images_per_sec

  def _line(self, step, summary, loss, lr, images_per_sec, eta) -> str:
    epoch = f"  epoch {summary['epoch']:.2f}" if "epoch" in summary else ""
    return (f"step {step}/{self.total_steps}{epoch}  loss {loss:.4f}  lr {lr:.2e}  "
            f"{images_per_sec:.1f} img/s  ETA {eta}")

  def evaluation(self, step: int, results: dict[str, float]) -> None:
    if results:
      self.message(f"eval at step {step}:\n{format_metrics_table(results)}")

  def close(self) -> None:
    """Ends the bar; later messages print as plain lines."""
    if self._bar is not None:
      self._bar.close()
      self._bar = None
