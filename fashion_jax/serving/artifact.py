"""An exported model on disk: its files and its metadata (serving/runtimes.py runs it).

An export folder (written by `python -m fashion_jax export`) holds:

  metadata.json      what goes in (image size, preprocessing) and what comes out (per
                     task: its output form, class names, thresholds; serving.outputs)
  model.onnx         the inference function for ONNX Runtime
  model.jax_export   the same function serialized by `jax.export` (batch-polymorphic)

Both take float32 RGB images [B, S, S, 3] on the 0-255 scale, preprocessed as
`decode` does (aspect kept, padded white), and return one float32 array per task in
metadata order: probabilities, attribute scores, unit-norm embeddings or values.

This module needs numpy and an image decoder: no JAX.
"""

import json
import os

import numpy as np

from fashion_jax.data import transforms
from fashion_jax.errors import ConfigError

FORMAT = "fashion_jax.export"
VERSION = 1
METADATA = "metadata.json"
ONNX_FILE = "model.onnx"
JAX_FILE = "model.jax_export"


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


def is_export(path: str) -> bool:
  return os.path.exists(os.path.join(path, METADATA))
