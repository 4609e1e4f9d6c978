"""A trained run's inference function, served live or exported (jax.export and ONNX).

The function is the evaluation model with each task's activation, float32 outputs
whatever the training dtype, built with `config.model.conv='xla'`: XLA's own
convolution and max pool, the same function and weights as the custom-VJP CPU
training path, in ops that exporters and other runtimes know.
"""

import datetime
import os
import shutil
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax.evaluation import trained
from fashion_jax import workdir as workdir_lib
from fashion_jax.data import product_images, transforms
from fashion_jax.errors import ConfigError
from fashion_jax.serving import artifact, runtimes

DEFAULT_PLATFORMS = ("cpu", "cuda", "tpu")


def metadata(run: trained.TrainedRun) -> dict:
  size = int(run.config.data.image_size)
  return {
      "format": artifact.FORMAT, "version": artifact.VERSION,
      "source": {"workdir": run.workdir, "checkpoint_step": int(run.step), "ema": run.ema,
                 "model": run.config.model.name,
                 "dtype": workdir_lib.read_config(run.workdir).model.get("dtype", "float32")},
      "input": {"name": "images", "dtype": "float32", "shape": ["batch", size, size, 3],
                "image_size": size, "channels": "RGB", "range": [0, 255],
                "preprocess": "aspect kept: the longer side resized to image_size "
                              "(bilinear), centred, padded with white (255)"},
      "outputs": [{"name": t.name, **t.spec.served_output(t)} for t in run.tasks],
      "compute_dtype": run.config.model.get("dtype", "float32"),
      "test_time_flip": run.flip,
      # Parent tasks' probabilities include their child tasks' evidence (hierarchy.decode).
      "hierarchy_decoding": [{"child": c, "parent": p} for c, p, _ in run.decode],
  }


def inference_function(run: trained.TrainedRun):
  """float32 images [B, S, S, 3] -> tuple of float32 outputs, in `run.tasks` order,
  with the weights as constants (host copies: no device placement is baked in)."""
  state = jax.device_get(run.state)
  tasks = tuple(run.tasks)

  def infer(images):
    outputs = trained.activated_outputs(run.graphdef, state, images, tasks=tasks,
                                        **run.inference)
    return tuple(outputs[t.name].astype(jnp.float32) for t in tasks)

  return infer


def bucket(n: int, devices: int) -> int:
  """Batch sizes are padded to powers of two (at least one image per device): a handful
  of compiled shapes serve all."""
  return max(1 << max(0, int(n - 1).bit_length()), devices)


def computed_as(dtype: str) -> dict:
  """How exported and served models compute: XLA's convolution, and `dtype` ('model':
  the training dtype; the float32 default runs everywhere: ONNX Runtime has no
  bfloat16 convolution on CPU)."""
  return {"conv": "xla", **({} if dtype == "model" else {"dtype": dtype})}


def sample_images(size: int, count: int = 8) -> np.ndarray:
  """Real product photos from the embedded sample, preprocessed: the parity check's input."""
  folder = os.path.join(product_images.SAMPLE_DIR, "images")
  names = sorted(os.listdir(folder))[:count]
  return np.stack([transforms.decode_image(transforms.read_file(os.path.join(folder, n)), size)
                   for n in names])


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
