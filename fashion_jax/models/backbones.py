"""Backbones by name: the contract every backbone family follows, and its registry.

A family is one module in fashion_jax/models/ defining `FAMILY`, a `Family` that says:

  names          the `config.model.name` values it builds
  options        its own `config.model` fields and their defaults (ResNet: width)
  build(...)     the backbone for `config.data.image_size`: an nnx.Module called as
                 `backbone(x, train)` on normalised images, returning pooled features
                 [B, backbone.num_features]
  total_stride   how many times it divides the image side: the smallest input it takes
                 (`check_image_size` checks `config.data.image_size` against it)
  input_mean, input_std   per RGB channel on the 0-255 scale, what its weights expect
                 (ImageNet statistics for torchvision's, 0.5 for many timm ViTs);
                 `input_statistics(name)` where they differ by name;
                 `config.model.input_statistics` overrides them
  packaged_weights(name)  (distribution, module, class) of a package that ships the
                 name's ImageNet weights, for `config.model.pretrained=imagenet`
                 (models/weights.py), or None
  check_options  its own fields, raising ConfigError that names the field
  foreign_layouts  {layout ('torchvision', 'timm'): {their parameter name: path in the
                 backbone's state}}, for `config.model.pretrained`; a file's layout is
                 the one its names match; `foreign_skipped` name prefixes (the
                 ImageNet classifier) are ignored; `convert_value` turns one of their
                 tensors into ours; `fit_value` adapts one whose shape depends on the
                 input size (ViT's position embeddings)

Backbone parameters are those under `MultiTaskModel.backbone`: frozen stages, the
backbone learning rate and imported weights select them by that path. Randomness a
backbone uses in training (stochastic depth, dropout) must come from an `nnx.Rngs` it
holds, which is part of the model's state: checkpointed, so a resumed run replays it.
A new family is one module and its names in `_FAMILY_NAMES`.
"""

import numpy as np

from fashion_jax import checks
from fashion_jax.errors import ConfigError, DataError
from fashion_jax.registry import Registry

_FAMILY_NAMES = {
    "fashion_jax.models.resnet": ("resnet_tiny", "resnet18", "resnet34", "resnet50",
                                  "resnet101"),
    "fashion_jax.models.convnext": ("convnext_test", "convnext_tiny", "convnext_small"),
    "fashion_jax.models.vit": ("vit_test", "vit_s16", "vit_b16"),
    "fashion_jax.models.efficientnet": (
        "efficientnet_test", *(f"{prefix}efficientnet_b{i}" for prefix in ("", "tf_")
                               for i in range(6)),
        "efficientnet_lite_test", *(f"{prefix}efficientnet_lite{i}" for prefix in ("", "tf_")
                                    for i in range(5))),
}
FAMILIES = Registry("backbone", {name: module for module, names in _FAMILY_NAMES.items()
                                 for name in names}, "FAMILY")
NAMES = tuple(FAMILIES)

# ImageNet statistics (RGB, 0-255 scale), as float32 values: normalising with exactly
# these keeps outputs bit-identical to earlier releases.
IMAGENET_MEAN = tuple((np.array([0.485, 0.456, 0.406], np.float32) * 255.0).tolist())
IMAGENET_STD = tuple((np.array([0.229, 0.224, 0.225], np.float32) * 255.0).tolist())
POOLINGS = ("token", "mean")  # config.model.pooling (ViT)
# config.model.input_statistics -> (mean, std); 'auto' is the family's own.
INPUT_STATISTICS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD),
                    "half": ((127.5,) * 3, (127.5,) * 3)}


class Family:
  """Defaults suit a convolutional ImageNet backbone; see the module docstring."""

  names: tuple[str, ...] = ()
  options: dict = {}
  total_stride = 32
  input_mean = IMAGENET_MEAN
  input_std = IMAGENET_STD
  # Prefixes of foreign parameters that are never the backbone's (its ImageNet classifier).
  foreign_skipped: tuple[str, ...] = ()

  def build(self, name: str, model_config, *, image_size: int, dtype,
            conv_implementation: str, rngs):
    raise NotImplementedError

  def check_options(self, model_config) -> None:
    """Checks the family's own `config.model` fields."""

  def input_statistics(self, name: str) -> tuple[tuple, tuple]:
    """(mean, std) per RGB channel, 0-255 scale, that `name`'s weights expect."""
    return self.input_mean, self.input_std

  def packaged_weights(self, name: str):
    """(pip distribution, module, class with get_model_file_path()) of the package that
    ships `name`'s ImageNet weights, or None."""
    return None

  def check_image_size(self, name: str, image_size) -> None:
    if not (isinstance(image_size, int) and image_size >= self.total_stride):
      raise ConfigError(
          f"config.data.image_size={image_size!r} must be an integer >= {self.total_stride}: "
          f"{name} divides the image side by {self.total_stride}, so "
          f"{self.total_stride} px is its smallest input.")

  def foreign_layouts(self, name: str) -> dict[str, dict[str, tuple]]:
    """{layout: {their parameter name: path in the backbone's state}}."""
    raise ConfigError(f"config.model.name={name!r}: importing foreign weights is not "
                      "supported for this backbone.")

  def convert_value(self, foreign_name: str, value: np.ndarray) -> np.ndarray:
    """Convolution kernels OIHW -> HWIO, linear weights [out, in] -> [in, out]."""
    if value.ndim == 4:
      return value.transpose(2, 3, 1, 0)
    if value.ndim == 2 and foreign_name.endswith("weight"):
      return value.T
    return value

  def fit_value(self, path: tuple, value: np.ndarray, shape: tuple, source: str) -> np.ndarray:
    """`value` for a backbone variable of another `shape` (default: an error)."""
    raise DataError(f"{source}: backbone/{'/'.join(map(str, path))} has shape {value.shape}, "
                    f"the model {shape} (another width or size of the network).")

  def convert_foreign(self, name: str, weights: dict[str, np.ndarray],
                      source: str = "weights") -> dict[tuple, np.ndarray]:
    """{backbone path: array} from a foreign state dict in any of the family's layouts,
    every name accounted for."""
    present = {k for k in weights if not self._skipped(k)}
    layouts = self.foreign_layouts(name)
    mismatches = {layout: (sorted(set(names) - present), sorted(present - set(names)))
                  for layout, names in layouts.items()}
    layout = min(mismatches, key=lambda n: sum(map(len, mismatches[n])))
    missing, unexpected = mismatches[layout]
    if missing or unexpected:
      raise DataError(f"{source} does not match {name} as {' or '.join(layouts)} name it; "
                      f"nearest, {layout}: {len(missing)} missing (e.g. {missing[:3]}), "
                      f"{len(unexpected)} unmatched (e.g. {unexpected[:3]}). Other variants "
                      "(resnet50d, other widths or depths) are not supported.")
    return {path: self.convert_value(foreign, np.asarray(weights[foreign], np.float32))
            for foreign, path in layouts[layout].items()}

  def _skipped(self, foreign_name: str) -> bool:
    return (foreign_name.startswith(self.foreign_skipped)
            or foreign_name.endswith("num_batches_tracked"))


def family(name: str) -> Family:
  """The family that builds `config.model.name=name` (its module imported on first use)."""
  if name not in FAMILIES:
    raise ConfigError(f"config.model.name={name!r} is not one of {sorted(NAMES)}.")
  return FAMILIES[name]


def input_statistics(model_config) -> tuple[tuple, tuple]:
  """(mean, std) per RGB channel, 0-255 scale, that the model normalises inputs with."""
  choice = model_config.get("input_statistics", "auto")
  if choice == "auto":
    return family(model_config.name).input_statistics(model_config.name)
  return INPUT_STATISTICS[choice]


def check_config(model_config, image_size) -> None:
  """`config.model.name`, the fields of its family and `config.data.image_size`."""
  checks.choice(model_config.name, "model.name", NAMES)
  checks.choice(model_config.get("input_statistics", "auto"), "model.input_statistics",
                ("auto", *INPUT_STATISTICS))
  # Options several families share (a family that has no use for one ignores it).
  checks.number(model_config.get("drop_path_rate", 0.0), "model.drop_path_rate", 0, 1,
                high_open=True)
  checks.choice(model_config.get("pooling", "token"), "model.pooling", POOLINGS)
  selected = family(model_config.name)
  selected.check_options(model_config)
  selected.check_image_size(model_config.name, image_size)
