"""An exported model on disk: its files, its metadata, and running it with ONNX Runtime.

An export folder (written by `python -m fashion_jax export`) holds:

  metadata.json      what goes in (image size, preprocessing) and what comes out (per
                     task: its output form, class names, thresholds; serving.outputs)
  model.onnx         the inference function for ONNX Runtime
  model.jax_export   the same function serialized by `jax.export` (batch-polymorphic)

Both take float32 RGB images [B, S, S, 3] on the 0-255 scale, preprocessed as
`decode` does (aspect kept, padded white), and return one float32 array per task in
metadata order: probabilities, attribute scores, unit-norm embeddings or values.

This module needs numpy, an image decoder and, for ONNX, onnxruntime: no JAX.
"""

import json
import os
from typing import Protocol

import numpy as np

from fashion_jax.data import transforms
from fashion_jax.errors import ConfigError

FORMAT = "fashion_jax.export"
VERSION = 1
METADATA = "metadata.json"
ONNX_FILE = "model.onnx"
JAX_FILE = "model.jax_export"


class Model(Protocol):
  """A servable model: metadata, and float32 images [B, S, S, 3] -> {task: outputs}."""

  metadata: dict

  def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]: ...


def image_size(metadata: dict) -> int:
  return int(metadata["input"]["image_size"])


def output_specs(metadata: dict) -> dict[str, dict]:
  """Task name -> its served output (serving.outputs), in the model's output order."""
  return {o["name"]: o for o in metadata["outputs"]}


def decode(data: bytes, metadata: dict) -> np.ndarray:
  """Encoded image -> uint8 [S, S, 3], as training's evaluation preprocessing does."""
  return transforms.decode_image(data, image_size(metadata))


def read_versioned_json(folder: str, name: str, fmt: str, version: int, what: str,
                        remedy: str) -> dict:
  """`folder/name`, a JSON file whose 'format' and 'version' must be `fmt` and `version`;
  errors say what the folder should have been (`what`) and how to get one (`remedy`)."""
  path = os.path.join(folder, name)
  try:
    with open(path) as f:
      value = json.load(f)
  except FileNotFoundError as e:
    raise ConfigError(f"{folder}: not {what} (no {name}); {remedy}.") from e
  except (OSError, ValueError) as e:
    raise ConfigError(f"{path}: unreadable ({e}); {remedy}.") from e
  if not isinstance(value, dict) or value.get("format") != fmt or value.get("version") != version:
    raise ConfigError(f"{path}: not a {fmt} v{version} file; {remedy}.")
  return value


def read_metadata(folder: str) -> dict:
  return read_versioned_json(folder, METADATA, FORMAT, VERSION, "an exported model",
                             "write one with python -m fashion_jax export --workdir=RUN "
                             "--out=DIR")


def write_metadata(folder: str, metadata: dict) -> None:
  with open(os.path.join(folder, METADATA), "w") as f:
    json.dump(metadata, f, indent=1)


class OnnxModel:
  """An exported model run by ONNX Runtime (CPU unless `providers` says otherwise)."""

  def __init__(self, folder: str, providers=("CPUExecutionProvider",), threads: int = 0):
    import onnxruntime  # Lazy: the [serve] extra.
    self.metadata = read_metadata(folder)
    path = os.path.join(folder, ONNX_FILE)
    if not os.path.exists(path):
      raise ConfigError(f"{folder} has no {ONNX_FILE}; export again without --no_onnx.")
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


def is_export(path: str) -> bool:
  return os.path.exists(os.path.join(path, METADATA))
