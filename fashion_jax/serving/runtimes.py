"""The served-model runtimes behind one interface (`Model`): an export folder run by
ONNX Runtime (`OnnxModel`) or by JAX from its jax.export file (`JaxExportModel`), or a
training workdir's live model (`LiveModel`); `load_model` picks one for a path. JAX and
onnxruntime are imported only by the runtimes that need them.
"""

import os
from typing import Protocol

import numpy as np

from fashion_jax.errors import ConfigError
from fashion_jax.serving import artifact


class Model(Protocol):
  """A servable model: metadata, and float32 images [B, S, S, 3] -> {task: outputs}."""

  metadata: dict

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]: ...


class OnnxModel:
  """An exported model run by ONNX Runtime (CPU unless `providers` says otherwise)."""

  def __init__(self, folder: str, providers=("CPUExecutionProvider",), threads: int = 0):
    import onnxruntime  # Lazy: the [serve] extra.
    self.metadata = artifact.read_metadata(folder)
    path = os.path.join(folder, artifact.ONNX_FILE)
    if not os.path.exists(path):
      raise ConfigError(f"{folder} has no {artifact.ONNX_FILE}; export again without --no_onnx.")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # Its shape-merge warnings on NHWC graphs are noise.
    if threads:
      options.intra_op_num_threads = threads
    try:
      self.session = onnxruntime.InferenceSession(path, options, providers=list(providers))
    except Exception as e:  # onnxruntime raises its own exception types.
      raise ConfigError(f"{path}: ONNX Runtime cannot load it ({e}).") from e
    self.input_name = self.session.get_inputs()[0].name
    self.output_names = [o.name for o in self.session.get_outputs()]

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    values = self.session.run(None, {self.input_name: np.asarray(images, np.float32)})
    return dict(zip(self.output_names, values))


class JaxExportModel:
  """An export folder's `model.jax_export`, deserialized and called by JAX."""

  def __init__(self, folder: str):
    import jax
    self.metadata = artifact.read_metadata(folder)
    path = os.path.join(folder, artifact.JAX_FILE)
    try:
      with open(path, "rb") as f:
        self.exported = jax.export.deserialize(bytearray(f.read()))
    except FileNotFoundError as e:
      raise ConfigError(f"{folder} has no {artifact.JAX_FILE}; export again.") from e
    except Exception as e:  # Deserialization raises assorted errors on bad bytes.
      raise ConfigError(f"{path}: not a serialized jax.export function ({e}).") from e
    self.names = [o["name"] for o in self.metadata["outputs"]]

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    values = self.exported.call(np.asarray(images, np.float32))
    return {name: np.asarray(v) for name, v in zip(self.names, values)}


class LiveModel:
  """A training workdir's model, jitted (XLA path) with the batch split over every
  device of the run's mesh, behind the serving interface."""

  def __init__(self, workdir: str, checkpoint: str = "best", ema: bool = False,
               dtype: str = "model"):
    import jax
    from fashion_jax import parallel
    from fashion_jax.evaluation import trained
    from fashion_jax.serving import served_function
    self.run = trained.load(workdir, checkpoint, ema, served_function.computed_as(dtype))
    self.metadata = served_function.metadata(self.run)
    self.names = [t.name for t in self.run.tasks]
    self._fn = jax.jit(served_function.inference_function(self.run),
                       out_shardings=parallel.replicated(self.run.mesh))

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
    from fashion_jax import parallel
    from fashion_jax.serving.served_function import bucket
    n = len(images)
    devices = self.run.mesh.devices.size
    padded = np.zeros((-(-bucket(n, devices) // devices) * devices, *images.shape[1:]),
                      np.float32)
    padded[:n] = images
    values = self._fn(parallel.shard_batch(padded, self.run.mesh))
    return {name: np.asarray(v)[:n] for name, v in zip(self.names, values)}


BACKENDS = ("onnx", "jax")


def load_model(path: str, backend: str = "onnx", checkpoint: str = "best") -> Model:
  """An export folder (run by `backend`: ONNX Runtime, or JAX's deserialized export)
  or a training workdir (its live model, `checkpoint`), behind the Model interface."""
  if backend not in BACKENDS:
    raise ConfigError(f"--backend={backend!r}: expected one of {BACKENDS}.")
  if not os.path.isdir(path):
    raise ConfigError(f"--model={path}: no such folder (an export or a training workdir).")
  if artifact.is_export(path) and backend == "onnx":
    return OnnxModel(path)
  if artifact.is_export(path):
    return JaxExportModel(path)
  return LiveModel(path, checkpoint)
