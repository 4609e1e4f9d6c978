"""Writes a trained run's served function (serving.served_function) to an export
folder: a jax.export file and an ONNX model, checked against the live model."""

import datetime
import os
import shutil
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax.evaluation import trained
from fashion_jax.errors import ConfigError
from fashion_jax.serving import artifact, runtimes
from fashion_jax.serving.served_function import (computed_as, inference_function, metadata,
                                                  sample_images)

DEFAULT_PLATFORMS = ("cpu", "cuda", "tpu")


def _write_jax(infer, size: int, path: str, platforms) -> tuple[str, ...]:
  batch = jax.export.symbolic_shape("batch")[0]
  spec = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
  exported = jax.export.export(jax.jit(infer), platforms=tuple(platforms))(spec)
  with open(path, "wb") as f:
    f.write(exported.serialize())
  return exported.platforms


def onnx_model(fn, size: int, names):
  """float32 images [batch, size, size, 3] -> outputs `names`, as an ONNX ModelProto."""
  from jax2onnx import to_onnx  # Lazy: the [serve] extra.
  model = to_onnx(fn, [("batch", size, size, 3)], model_name="fashion_jax",
                  input_names=["images"], output_names=list(names))
  # jax2onnx 0.17 annotates some intermediate NHWC/NCHW values with the other layout's
  # shape; ONNX Runtime then refuses a broadcasting Add in deeper ResNets. The graph is
  # right without the annotations (ONNX Runtime infers the shapes itself).
  del model.graph.value_info[:]
  return model


def export_run(workdir: str, out: str, checkpoint: str = "best", ema: bool = False,
               onnx: bool = True, platforms=DEFAULT_PLATFORMS, dtype: str = "float32") -> dict:
  """Writes the export folder `out` (see serving.artifact); returns its metadata.

  The files are written to a temporary folder next to `out` and moved into place at
  the end, so an interrupted export never leaves a half-written model behind. `dtype`:
  what the exported network computes in (float32 by default, whatever it trained in;
  'model' keeps the training dtype, for jax.export only if that is not float32). The
  exported functions are checked against the live model on sample photos; the largest
  absolute differences are recorded in the metadata ('parity').
  """
  started = time.time()
  run = trained.load(workdir, checkpoint, ema, computed_as(dtype))
  if onnx and run.config.model.get("dtype", "float32") != "float32":
    raise ConfigError(f"--dtype={dtype}: {run.config.model.dtype} models export to "
                      "jax.export only (ONNX Runtime has no bfloat16 convolution on CPU); "
                      "use --dtype=float32 or --noonnx.")
  infer = inference_function(run)
  size = int(run.config.data.image_size)
  names = [t.name for t in run.tasks]
  meta = metadata(run)
  parent = os.path.dirname(os.path.abspath(out))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=".export_", dir=parent)
  try:
    meta["jax_platforms"] = list(_write_jax(infer, size, os.path.join(staging, artifact.JAX_FILE),
                                            platforms))
    if onnx:
      import onnx
      onnx.save_model(onnx_model(infer, size, names), os.path.join(staging, artifact.ONNX_FILE))
    meta["files"] = sorted(os.listdir(staging))
    meta["exported_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds")
    artifact.write_metadata(staging, meta)
    images = sample_images(size).astype(np.float32)
    live = dict(zip(names, jax.device_get(jax.jit(infer)(images))))
    backends = {"jax": runtimes.JaxExportModel(staging)}
    if onnx:
      backends["onnx"] = runtimes.OnnxModel(staging)
    meta["parity"] = {
        backend: {n: float(np.abs(model(images)[n] - live[n]).max()) for n in names}
        for backend, model in backends.items()}
    meta["export_seconds"] = round(time.time() - started, 1)
    artifact.write_metadata(staging, meta)
    if os.path.exists(out):
      if not artifact.is_export(out) and os.listdir(out):
        raise ConfigError(f"--out={out} exists and is not an export folder; choose "
                          "another path (nothing was overwritten).")
      shutil.rmtree(out)
    os.replace(staging, out)
  finally:
    if os.path.exists(staging):
      shutil.rmtree(staging)
  return meta
