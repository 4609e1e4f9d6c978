"""Metric writers (console + TensorBoard) from clu, without TensorFlow.

`clu.metric_writers` imports its TensorFlow summary writer unconditionally, so with no
TensorFlow installed even the logging writer cannot be imported. When TensorFlow is
missing we register, before clu is first imported, a `summary_writer` module whose
`SummaryWriter` writes the same TensorBoard event files with tensorboardX. Import clu's
writers only through this module.
"""

import importlib.util
import sys
import types

from absl import logging


def _install_tensorboardx_summary_writer() -> None:
  name = "clu.metric_writers.summary_writer"
  if name in sys.modules or importlib.util.find_spec("tensorflow") is not None:
    return
  import tensorboardX

  # Duck-typed clu.metric_writers.interface.MetricWriter: importing the interface
  # here would run the package __init__ that this shim exists to get past.
  class SummaryWriter:
    """TensorBoard event files through tensorboardX (scalars, images, text, hparams)."""

    def __init__(self, logdir: str):
      self._writer = tensorboardX.SummaryWriter(logdir=logdir)

    def write_summaries(self, step, values, metadata=None):
      for key, value in values.items():
        self._writer.add_scalar(key, value, global_step=step)

    def write_scalars(self, step, scalars):
      for key, value in scalars.items():
        self._writer.add_scalar(key, float(value), global_step=step)

    def write_images(self, step, images):
      for key, value in images.items():
        self._writer.add_images(key, value, global_step=step, dataformats="NHWC")

    def write_videos(self, step, videos):
      logging.log_first_n(logging.WARNING, "Videos are not written without TensorFlow.", 1)

    def write_audios(self, step, audios, *, sample_rate):
      for key, value in audios.items():
        self._writer.add_audio(key, value, global_step=step, sample_rate=sample_rate)

    def write_texts(self, step, texts):
      for key, value in texts.items():
        self._writer.add_text(key, value, global_step=step)

    def write_histograms(self, step, arrays, num_buckets=None):
      for key, value in arrays.items():
        self._writer.add_histogram(key, value, global_step=step)

    def write_hparams(self, hparams):
      self._writer.add_text("hparams", "\n".join(f"    {k}: {v}" for k, v in hparams.items()))

    def flush(self):
      self._writer.flush()

    def close(self):
      self._writer.close()

  module = types.ModuleType(name)
  module.SummaryWriter = SummaryWriter
  sys.modules[name] = module


_install_tensorboardx_summary_writer()

from clu import metric_writers  # noqa: E402  (must follow the shim above)
from clu import periodic_actions  # noqa: E402

__all__ = ["metric_writers", "periodic_actions"]
