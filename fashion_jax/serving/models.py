"""Any servable model behind one interface: an export folder (run by ONNX Runtime, or by
JAX from its jax.export file) or a training workdir (its live model). JAX is imported
only for the latter two."""

import os

from fashion_jax.errors import ConfigError
from fashion_jax.serving import artifact

BACKENDS = ("onnx", "jax")


def load_model(path: str, backend: str = "onnx", checkpoint: str = "best") -> artifact.Model:
  """An export folder (run by `backend`: ONNX Runtime, or JAX's deserialized export)
  or a training workdir (its live model, `checkpoint`), behind the Model interface."""
  if backend not in BACKENDS:
    raise ConfigError(f"--backend={backend!r}: expected one of {BACKENDS}.")
  if not os.path.isdir(path):
    raise ConfigError(f"--model={path}: no such folder (an export or a training workdir).")
  if artifact.is_export(path) and backend == "onnx":
    return artifact.OnnxModel(path)
  from fashion_jax.serving import export  # JAX.
  if artifact.is_export(path):
    return export.JaxExportModel(path)
  return export.LiveModel(path, checkpoint)
