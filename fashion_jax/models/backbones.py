"""Backbones by name: the contract every backbone family follows, and its registry.

A family is one module in fashion_jax/models/ defining `FAMILY`, a `Family` that says:

  names          the `config.model.name` values it builds
  options        its own `config.model` fields and their defaults (ResNet: width)
  build(...)     the backbone: an nnx.Module called as `backbone(x, train)` on images
                 normalised with `input_mean`/`input_std`, returning pooled features
                 [B, backbone.num_features]
  total_stride   how many times it divides the image side: the smallest input it takes
  input_mean, input_std   per RGB channel on the 0-255 scale, what its weights expect
                 (ImageNet statistics for torchvision's, 0.5 for many timm ViTs)
  check_options  its own fields, raising ConfigError that names the field
  foreign_names / convert_foreign   its mapping from torchvision/timm parameter names
                 to the backbone's state, for `config.model.pretrained`

Backbone parameters are those under `MultiTaskModel.backbone`: frozen stages, the
backbone learning rate and imported weights select them by that path. Randomness a
backbone uses in training (stochastic depth, dropout) must come from an `nnx.Rngs` it
holds, which is part of the model's state: checkpointed, so a resumed run replays it.
A new family is one module and its names in `_MODULES`.
"""

import importlib

import numpy as np

from fashion_jax import checks
from fashion_jax.errors import ConfigError, DataError

_RESNET = "fashion_jax.models.resnet"
_MODULES = {name: _RESNET for name in ("resnet_tiny", "resnet18", "resnet34", "resnet50",
                                        "resnet101")}
NAMES = tuple(_MODULES)

# ImageNet statistics (RGB, 0-255 scale), as float32 values: normalising with exactly
# these keeps outputs bit-identical to earlier releases.
IMAGENET_MEAN = tuple((np.array([0.485, 0.456, 0.406], np.float32) * 255.0).tolist())
IMAGENET_STD = tuple((np.array([0.229, 0.224, 0.225], np.float32) * 255.0).tolist())
# Foreign parameters that are never the backbone's (the ImageNet classifier).
_FOREIGN_SKIPPED = ("fc.",)


class Family:
  """Defaults suit a convolutional ImageNet backbone; see the module docstring."""

  names: tuple[str, ...] = ()
  options: dict = {}
  total_stride = 32
  input_mean = IMAGENET_MEAN
  input_std = IMAGENET_STD

  def build(self, name: str, model_config, *, dtype, conv_implementation: str, rngs):
    raise NotImplementedError

  def check_options(self, model_config) -> None:
    """Checks the family's own `config.model` fields."""

  def foreign_names(self, name: str) -> dict[str, tuple]:
    """torchvision/timm parameter name -> path in the backbone's state."""
    raise ConfigError(f"config.model.name={name!r}: importing foreign weights is not "
                      "supported for this backbone.")

  def convert_foreign(self, name: str, weights: dict[str, np.ndarray],
                      source: str = "weights") -> dict[tuple, np.ndarray]:
    """{backbone path: array} from a foreign state dict, every name accounted for;
    4-D convolution kernels go OIHW -> HWIO."""
    names = self.foreign_names(name)
    unexpected = sorted(k for k in weights if k not in names and not _skipped(k))
    missing = sorted(k for k in names if k not in weights)
    if unexpected or missing:
      raise DataError(f"{source} does not match a torchvision/timm {name}: "
                      f"{len(missing)} missing (e.g. {missing[:3]}), {len(unexpected)} "
                      f"unexpected (e.g. {unexpected[:3]}). Deep-stem variants (resnet50d) "
                      "and other widths are not supported.")
    converted = {}
    for foreign, path in names.items():
      value = np.asarray(weights[foreign], np.float32)
      converted[path] = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value
    return converted


def _skipped(name: str) -> bool:
  return name.startswith(_FOREIGN_SKIPPED) or name.endswith("num_batches_tracked")


def family(name: str) -> Family:
  """The family that builds `config.model.name=name` (its module imported on first use)."""
  if name not in _MODULES:
    raise ConfigError(f"config.model.name={name!r} is not one of {sorted(NAMES)}.")
  return importlib.import_module(_MODULES[name]).FAMILY


def check_config(model_config) -> None:
  """`config.model.name` and the fields of its family."""
  checks.choice(model_config.name, "model.name", NAMES)
  family(model_config.name).check_options(model_config)
