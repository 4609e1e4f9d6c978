"""A trained run as the function that is served: float32 images in, each task's
activated float32 outputs out, with the metadata that describes them. Exports write
it to files (serving.export); the live runtime jits it (serving.runtimes).

The function is the evaluation model with each task's activation, float32 outputs
whatever the training dtype, built with `config.model.conv='xla'`: XLA's own
convolution and max pool, the same function and weights as the custom-VJP CPU
training path, in ops that exporters and other runtimes know.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np

from fashion_jax import workdir as workdir_lib
from fashion_jax.data import product_images, transforms
from fashion_jax.evaluation import trained
from fashion_jax.serving import artifact


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
