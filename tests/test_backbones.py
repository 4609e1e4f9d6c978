"""The backbone contract (models/backbones.py): a family is one module behind it."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from fashion_jax import tasks as tasks_lib
from fashion_jax.data.vocab import Vocab
from fashion_jax.errors import ConfigError, DataError
from fashion_jax.models import backbones, build_model, heads
from fashion_jax.tasks import task_config

_TOY_FAMILY = '''
import jax.numpy as jnp
from flax import nnx
from fashion_jax.models import backbones


class Toy(nnx.Module):
  def __init__(self, features, rngs):
    self.dense = nnx.Linear(3, features, rngs=rngs)
    self.num_features = features

  def __call__(self, x, train):
    return self.dense(jnp.mean(x, axis=(1, 2)))


class ToyFamily(backbones.Family):
  names = ("toy",)
  options = {"features": 4}
  total_stride = 1
  input_mean = (127.5, 127.5, 127.5)
  input_std = (127.5, 127.5, 127.5)

  def build(self, name, model_config, *, image_size, dtype, conv_implementation, rngs):
    return Toy(model_config.features, rngs)


FAMILY = ToyFamily()
'''


def test_a_backbone_family_is_one_module_behind_the_contract(tmp_path, monkeypatch):
  (tmp_path / "toy_backbone.py").write_text(_TOY_FAMILY)
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setitem(backbones.FAMILIES.modules, "toy", "toy_backbone")
  monkeypatch.setattr(backbones, "NAMES", (*backbones.NAMES, "toy"))
  config = ml_collections.ConfigDict({"name": "toy", "features": 4, "dtype": "float32",
                                      "conv": "auto", "pretrained": ""})
  heads.check_config(config, image_size=1)  # The family's own smallest input.
  tasks = tasks_lib.parse_tasks({"gender": task_config("softmax", "gender")})
  model = build_model(config, tasks, {"gender": Vocab("gender", ["a", "b", "c"])}, seed=0)
  assert model.input_mean == (127.5, 127.5, 127.5)
  # White images normalise to 1.0 with the family's statistics.
  white = jnp.full((2, 8, 8, 3), 255, jnp.uint8)
  expected = model.heads["gender"](model.backbone.dense(jnp.ones((2, 3))))
  np.testing.assert_allclose(model(white)["gender"], expected, rtol=1e-6)
  with pytest.raises(ConfigError, match="config.data.image_size=0"):
    heads.check_config(config, image_size=0)


def test_every_registered_name_has_a_family_that_builds_it():
  for name in backbones.NAMES:
    family = backbones.family(name)
    assert name in family.names and family.total_stride >= 1
    assert len(family.input_mean) == len(family.input_std) == 3
  with pytest.raises(ConfigError, match="config.model.name='vit_huge' is not one of"):
    backbones.family("vit_huge")


def test_foreign_weights_must_match_name_for_name():
  family = backbones.family("resnet_tiny")
  (names,) = family.foreign_layouts("resnet_tiny").values()
  weights = {name: np.zeros((1,), np.float32) for name in names}
  weights["fc.weight"] = np.zeros((2, 2), np.float32)  # The classifier is skipped.
  assert set(family.convert_foreign("resnet_tiny", weights)) == set(names.values())
  del weights["conv1.weight"]
  with pytest.raises(DataError, match="1 missing"):
    family.convert_foreign("resnet_tiny", weights, "w.npz")
