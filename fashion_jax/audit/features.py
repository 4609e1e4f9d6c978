"""Image features for the audit: a frozen backbone's pooled features of every row.

The backbone is `config.model` with its `pretrained` weights (the packaged ImageNet
Lite0 in configs/catalog.py): weights that never saw the catalog's labels, so that the
heads cross-fitted on these features give honest out-of-sample probabilities. Features
are cached in the audit's folder (`features_<size>px*.npz`, keyed by the rows' ids, the
model, the image size and the view), so that a re-run with other settings skips the images.
"""

import dataclasses
import hashlib
import os

import jax
import numpy as np
from flax import nnx
from tqdm import tqdm

from fashion_jax.data import transforms
from fashion_jax.errors import ConfigError
from fashion_jax.models import heads, initialise
from fashion_jax.models import weights as weights_lib


def cache_name(image_size: int, crop: float = 1.0) -> str:
  return f"features_{image_size}px" + (f"_central{round(crop * 100)}" if crop < 1 else "") + ".npz"


@dataclasses.dataclass
class Features:
  """Per row of a table: features [N, D] float32 (zeros where unreadable), whether the
  image could be read, why not, and the SHA-256 of its bytes ('' where unread)."""

  values: np.ndarray
  readable: np.ndarray
  errors: dict[int, str]
  digests: np.ndarray


def check_pretrained(model_config) -> None:
  """The audit's backbone must come with weights: random features judge nothing."""
  pretrained = model_config.get("pretrained", "")
  if pretrained in ("", weights_lib.RANDOM):
    raise ConfigError(
        f"config.model.pretrained={pretrained!r}: the audit needs features that never saw "
        "the catalog's labels, from pretrained weights: set config.model.pretrained=imagenet "
        f"(packaged for {weights_lib.packaged_models()}) or a weights file or folder.")
  weights_lib.check_pretrained(pretrained, model_config.name)


def feature_function(model_config, image_size: int):
  """(jitted uint8 images [B, S, S, 3] -> features [B, D], D) for `model_config`'s
  backbone with its `pretrained` weights."""
  check_pretrained(model_config)
  pretrained = model_config.pretrained

  def build():
    return heads.build_model(model_config, [], {}, 0, image_size=image_size)

  graphdef, _ = nnx.split(nnx.eval_shape(build))
  state = initialise.initialised_state(build)
  state = weights_lib.apply_to_model(
      state, weights_lib.load_backbone(pretrained, model_config.name),
      f"config.model.pretrained={pretrained}", model_config.name)
  num_features = nnx.merge(graphdef, state).backbone.num_features
  fn = jax.jit(lambda s, images: nnx.merge(graphdef, s).features(images))
  return (lambda images: np.asarray(fn(state, images), np.float32)), num_features


def _cache_key(ids: np.ndarray, model_config, image_size: int, crop: float) -> str:
  text = "\n".join([model_config.name, str(model_config.get("pretrained", "")),
                    str(image_size), str(crop), *map(str, ids)])
  return hashlib.sha256(text.encode()).hexdigest()


def extract(table, model_config, image_size: int, batch_size: int = 32, cache_dir: str = "",
            progress: bool = True, crop: float = 1.0) -> Features:
  """Features of every row of `table` (unreadable images reported, never fatal); with
  `crop` < 1, of each image's central `crop` of width and height."""
  key = _cache_key(table.ids, model_config, image_size, crop)
  cache = os.path.join(cache_dir, cache_name(image_size, crop)) if cache_dir else ""
  if cache and os.path.exists(cache):
    with np.load(cache, allow_pickle=False) as saved:
      if str(saved["key"]) == key:
        errors = {int(i): str(e) for i, e in zip(saved["error_rows"], saved["error_texts"])}
        return Features(saved["values"], saved["readable"], errors, saved["digests"])
  fn, dim = feature_function(model_config, image_size)
  values = np.zeros((len(table), dim), np.float32)
  readable = np.zeros(len(table), bool)
  digests = np.full(len(table), "", dtype=object)
  errors = {}

  def read(row):
    data = table.image(row)
    digests[row] = hashlib.sha256(data).hexdigest()
    return data

  rows = list(range(len(table)))
  what = f"features {image_size} px" + (f", central {crop:.0%}" if crop < 1 else "")
  with tqdm(total=len(rows), desc=what, unit="img", disable=not progress) as bar:
    for chunk, images, failures in transforms.decoded_batches(rows, read, image_size,
                                                              batch_size, crop):
      batch = np.zeros((batch_size, image_size, image_size, 3), np.uint8)
      for i, (row, image, error) in enumerate(zip(chunk, images, failures)):
        if image is None:
          errors[row] = f"{table.images.describe(int(table.rows[row]))}: {error}"
        else:
          batch[i] = image
      out = fn(batch)[:len(chunk)]
      for i, row in enumerate(chunk):
        if images[i] is not None:
          values[row], readable[row] = out[i], True
      bar.update(len(chunk))
  features = Features(values, readable, errors, digests.astype(str))
  if cache:
    os.makedirs(cache_dir, exist_ok=True)
    staging = cache + ".partial.npz"
    np.savez(staging, key=key, values=values, readable=readable, digests=features.digests,
             error_rows=np.asarray(sorted(errors), np.int64),
             error_texts=np.asarray([errors[i] for i in sorted(errors)], dtype=str))
    os.replace(staging, cache)
  return features
