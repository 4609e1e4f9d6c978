"""What every backbone family must do (models/backbones.py): match the published
networks' parameter shapes at every size, train with every task kind, stages, EMA and
stochastic depth, resume bit for bit, and run in bfloat16 across devices."""

import functools
import os
import subprocess
import sys
import textwrap

import jax
import ml_collections
import numpy as np
import pytest
import timm
import torch
import torchvision
from flax import nnx

from conftest import REPO, xla_flags
from fashion_jax.models import backbones

# Our name -> (timm's name, torchvision's constructor or None).
_PUBLISHED = {
    "convnext_tiny": ("convnext_tiny", "convnext_tiny"),
    "convnext_small": ("convnext_small", "convnext_small"),
    "vit_s16": ("vit_small_patch16_224", None),
    "vit_b16": ("vit_base_patch16_224", "vit_b_16"),
    **{f"efficientnet_b{i}": (f"efficientnet_b{i}", f"efficientnet_b{i}") for i in range(6)},
    **{f"tf_efficientnet_b{i}": (f"tf_efficientnet_b{i}", None) for i in range(6)},
    **{f"{p}efficientnet_lite{i}": (f"{p}efficientnet_lite{i}", None)
       for p in ("", "tf_") for i in range(5)},
}
# The quick tier checks each family's smallest sizes; the larger ones take seconds each.
_LARGE = ("b2", "b3", "b4", "b5", "lite3", "lite4", "small", "b16")
_SOURCES = [pytest.param(name, source, marks=[pytest.mark.slow] if name.endswith(_LARGE) else [])
            for name, (timm_name, tv_name) in _PUBLISHED.items()
            for source in ("timm", "torchvision") if source == "timm" or tv_name]


@functools.lru_cache(maxsize=None)
def _abstract_backbone(name, image_size=224):
  _, state = nnx.split(nnx.eval_shape(lambda: backbones.family(name).build(
      name, ml_collections.ConfigDict({"pooling": "token", "drop_path_rate": 0.0}),
      image_size=image_size, dtype=jax.numpy.float32, conv_implementation="xla",
      rngs=nnx.Rngs(0))))
  return {tuple(getattr(k, "key", k) for k in path): leaf.shape
          for path, leaf in jax.tree_util.tree_leaves_with_path(state)}


@pytest.mark.parametrize("name,source", _SOURCES)
def test_every_size_takes_the_published_networks_weights(name, source):
  timm_name, tv_name = _PUBLISHED[name]
  with torch.device("meta"):  # Shapes only: no memory, no initialisation.
    model = (timm.create_model(timm_name) if source == "timm"
             else getattr(torchvision.models, tv_name)())
  # Zero-stride views: a file's worth of names and shapes for nothing.
  state_dict = {k: np.broadcast_to(np.float32(0), v.shape) for k, v in model.state_dict().items()}
  family = backbones.family(name)
  converted = family.convert_foreign(name, state_dict, source)
  ours = _abstract_backbone(name)
  assert set(converted) == {path[:-1] for path in ours}, name
  for path, shape in ours.items():
    assert converted[path[:-1]].shape == shape, (path, converted[path[:-1]].shape, shape)
  if ("pos_embed", "value") not in ours:
    return
  # Another image size: only the position embeddings differ, and they are resampled.
  for path, shape in _abstract_backbone(name, 96).items():
    value = converted[path[:-1]]
    if value.shape != shape:
      assert path[:-1] == ("pos_embed",), path
      assert family.fit_value(path[:-1], value, shape, source).shape == shape


_TEST_VARIANTS = ["convnext_test", "vit_test", "efficientnet_test", "efficientnet_lite_test"]


_RESUME_SCRIPT = textwrap.dedent("""
    import os, shutil, sys
    sys.path.insert(0, {tests!r})
    import jax, numpy as np
    from conftest import tiny_config
    from fashion_jax.training import checkpoint, train
    assert jax.device_count() == 2

    def config():
      config = tiny_config()
      config.model.name = {name!r}
      config.model.dtype = "bfloat16"
      config.model.drop_path_rate = 0.2
      config.ema_decay = 0.9
      config.num_train_steps = 5
      config.eval_every_steps = 5
      config.eval_test = False
      config.checkpoint.keep = 10
      config.model.pretrained = "random"  # Its frozen stage freezes a random backbone.
      config.stages = {{
          "heads": {{"until_step": 2, "tasks": "", "frozen_backbone": True}},
          "all": {{"until_step": -1, "tasks": "", "frozen_backbone": False}},
      }}
      return config

    def stored(workdir):
      return {{part: checkpoint.read_stored_part(os.path.join(workdir, "checkpoints"), 5, part)
              for part in ("model", "optimizer", "ema")}}

    uninterrupted, resumed = {workdir!r} + "/a", {workdir!r} + "/b"
    metrics = train.train_and_evaluate(config(), uninterrupted)
    assert np.isfinite(metrics["val/articleType/loss"]), metrics
    # The same run stopped after its step-4 checkpoint, then resumed.
    shutil.copytree(uninterrupted, resumed)
    shutil.rmtree(os.path.join(resumed, "checkpoints", "5"))
    train.train_and_evaluate(config(), resumed)
    expected, got = stored(uninterrupted), stored(resumed)
    for part in expected:
      for a, b in zip(jax.tree.leaves(expected[part]), jax.tree.leaves(got[part])):
        np.testing.assert_array_equal(a, b, err_msg=part)
    calls = got["model"]["backbone"]["drop_path_keys"]["calls"]
    print("drop_path_calls", int(np.asarray(calls.get("value", calls))))
    """)


@pytest.mark.slow
@pytest.mark.parametrize("name", _TEST_VARIANTS)
def test_trains_in_bfloat16_on_two_devices_with_stages_ema_stochastic_depth_and_resumes_bitwise(
    tmp_path, name):
  env = {**os.environ, "XLA_FLAGS": xla_flags("--xla_force_host_platform_device_count=2"),
         "JAX_PLATFORMS": "cpu"}
  script = _RESUME_SCRIPT.format(tests=os.path.join(REPO, "tests"), name=name,
                                 workdir=str(tmp_path))
  result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600, cwd=REPO)
  assert result.returncode == 0, result.stderr[-3000:]
  # Stochastic depth drew keys in the 3 steps with the backbone unfrozen, none before;
  # its randomness is checkpointed with the model (the resumed run drew the same).
  assert result.stdout.strip().splitlines()[-1] == "drop_path_calls 3", result.stdout[-2000:]
