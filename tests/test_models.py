"""The ResNet family and the multi-task heads."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from fashion_jax import tasks as tasks_lib
from fashion_jax.data.vocab import Vocab
from fashion_jax.errors import ConfigError
from fashion_jax.models import build_model
from fashion_jax.models.resnet import ResNet
from fashion_jax.tasks import task_config


def _param_count(module) -> int:
  return sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


@pytest.mark.parametrize("name, params, features", [
    # torchvision's counts without the fc layer.
    ("resnet18", 11_176_512, 512),
    ("resnet34", 21_284_672, 512),
    ("resnet50", 23_508_032, 2048),
    ("resnet101", 42_500_160, 2048),
])
def test_architectures_match_torchvision_sizes(name, params, features):
  model = nnx.eval_shape(lambda: ResNet(name, rngs=nnx.Rngs(0)))  # Shapes only: no compute.
  assert _param_count(model) == params
  assert model.num_features == features


def test_unknown_architecture_names_the_field():
  with pytest.raises(ConfigError, match="config.model.name='resnet9'"):
    ResNet("resnet9", rngs=nnx.Rngs(0))


def test_each_head_has_its_shape_and_embeddings_are_unit_length():
  tasks = tasks_lib.parse_tasks(ml_collections.ConfigDict({
      "colour": task_config("softmax", "baseColour"),
      "tags": task_config("sigmoid", "tags"),
      "embedding": task_config("embedding", "articleType", dim=12),
  }))
  vocabs = {"colour": Vocab("baseColour", list("abcde")), "tags": Vocab("tags", list("xyz"), "|"),
            "embedding": Vocab("articleType", list("pq"))}
  model_config = ml_collections.ConfigDict({"name": "resnet_tiny", "width": 8, "dtype": "float32"})
  model = build_model(model_config, tasks, vocabs, seed=0)
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)), jnp.uint8)
  for train in (True, False):
    out = model(images, train=train)
    assert out["colour"].shape == (3, 5) and out["tags"].shape == (3, 3)
    assert out["embedding"].shape == (3, 12)
    np.testing.assert_allclose(jnp.linalg.norm(out["embedding"], axis=1), 1.0, rtol=1e-5)


def test_bfloat16_compute_keeps_float32_parameters():
  model_config = ml_collections.ConfigDict({"name": "resnet_tiny", "width": 8, "dtype": "bfloat16"})
  tasks = tasks_lib.parse_tasks(ml_collections.ConfigDict({"t": task_config("softmax", "c")}))
  model = build_model(model_config, tasks, {"t": Vocab("c", ["a", "b"])}, seed=0)
  out = model(jnp.zeros((2, 32, 32, 3), jnp.uint8))
  assert out["t"].dtype == jnp.float32
  assert {x.dtype for x in jax.tree.leaves(nnx.state(model, nnx.Param))} == {jnp.dtype("float32")}


def test_l2_normalize_has_a_finite_gradient_at_the_zero_vector():
  from fashion_jax.models.heads import l2_normalize
  x = jnp.asarray([[0.0, 0.0, 0.0], [3.0, 0.0, 4.0]])
  np.testing.assert_allclose(l2_normalize(x), [[0, 0, 0], [0.6, 0, 0.8]], atol=1e-7)
  grad = jax.grad(lambda x: jnp.sum(l2_normalize(x) * jnp.asarray([1.0, 2.0, 3.0])))(x)
  assert np.isfinite(grad).all()
  # Away from 0 it is the true gradient of x / ||x||.
  reference = jax.grad(lambda v: jnp.sum(v / jnp.linalg.norm(v) * jnp.asarray([1.0, 2.0, 3.0])))
  np.testing.assert_allclose(grad[1], reference(x[1]), rtol=1e-6)


def test_flip_prediction_is_the_mean_over_the_image_and_its_mirror():
  tasks = tasks_lib.parse_tasks({"a": task_config("softmax", "a"),
                                 "e": task_config("embedding", "a", dim=8)})
  vocabs = {"a": Vocab("a", ["x", "y", "z"]), "e": Vocab("a", ["x", "y", "z"])}
  model = build_model(ml_collections.ConfigDict(dict(name="resnet_tiny", width=8)), tasks,
                      vocabs, seed=0)
  images = jnp.asarray(np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3)), jnp.uint8)
  plain, mirrored = model(images), model(images[:, :, ::-1])
  both = model.predict(images, flip=True)
  np.testing.assert_allclose(both["a"], (plain["a"] + mirrored["a"]) / 2, rtol=1e-5, atol=1e-6)
  mean = plain["e"] + mirrored["e"]
  np.testing.assert_allclose(both["e"], mean / np.linalg.norm(mean, axis=-1, keepdims=True),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(model.predict(images)["a"], plain["a"])
  # A mirror-symmetric image predicts the same either way.
  symmetric = jnp.concatenate([images[:, :, :16], images[:, :, :16][:, :, ::-1]], axis=2)
  np.testing.assert_allclose(model.predict(symmetric, flip=True)["a"], model(symmetric)["a"],
                             rtol=1e-5, atol=1e-5)

