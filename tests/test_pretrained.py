"""ImageNet weight import: torchvision-layout ResNets in torch vs the converted Flax model."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch
from flax import nnx

from conftest import REPO, tiny_config
from fashion_jax import parallel
from fashion_jax.training import optim, train_state
from fashion_jax.models import weights as pretrained
from fashion_jax import tasks as tasks_lib
from fashion_jax.data import labelled
from fashion_jax.errors import DataError
from fashion_jax.models.resnet import ResNet
from scripts.torch_resnet import resnet as torch_resnet


def _random_torch_resnet(name, seed=0):
  torch.manual_seed(seed)
  model = torch_resnet(name)
  # Random BatchNorm statistics and affine terms, so that every mapped tensor matters.
  with torch.no_grad():
    for module in model.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.weight.uniform_(0.5, 1.5)
        module.bias.normal_(0, 0.1)
        module.running_mean.normal_(0, 0.1)
        module.running_var.uniform_(0.5, 1.5)
  return model.eval()


def _flax_features(name, converted, images_nhwc):
  model = ResNet(name, rngs=nnx.Rngs(0), conv_implementation="xla")
  graphdef, state = nnx.split(model)
  state = pretrained.apply_to_model(
      jax.tree.map(lambda x: x, {"backbone": state}), converted, "test", name)["backbone"]
  model = nnx.merge(graphdef, state)
  return np.asarray(model(images_nhwc, train=False))


@pytest.mark.parametrize("name", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)])
def test_converted_weights_give_torchs_features(tmp_path, name):
  model = _random_torch_resnet(name)
  images = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
  with torch.no_grad():
    expected = model.features(torch.from_numpy(images)).numpy()
  path = str(tmp_path / f"{name}.pth")
  torch.save(model.state_dict(), path)
  converted = pretrained.convert(pretrained.read_weights_file(path), name, path)
  got = _flax_features(name, converted, images.transpose(0, 2, 3, 1))
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
  assert np.abs(expected).mean() > 0.01  # Not a trivially small output.


@pytest.mark.slow
def test_safetensors_npz_and_orbax_folder_hold_the_same_weights(tmp_path):
  from safetensors.numpy import save_file
  state_dict = {k: v.numpy() for k, v in _random_torch_resnet("resnet18").state_dict().items()}
  np.savez(tmp_path / "w.npz", **state_dict)
  save_file({k: np.ascontiguousarray(v) for k, v in state_dict.items()},
            str(tmp_path / "w.safetensors"))
  reference = pretrained.convert(state_dict, "resnet18")
  for name in ("w.npz", "w.safetensors"):
    converted = pretrained.load_backbone(str(tmp_path / name), "resnet18")
    assert converted.keys() == reference.keys()
    for key in reference:
      np.testing.assert_array_equal(converted[key], reference[key])
  # The CLI writes an Orbax folder that config.model.pretrained reads back.
  out = tmp_path / "orbax"
  result = subprocess.run([sys.executable, "-m", "fashion_jax", "pretrained",
                           f"--weights={tmp_path / 'w.npz'}", "--model=resnet18", f"--out={out}"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
  assert result.returncode == 0, result.stderr[-2000:]
  restored = pretrained.load_backbone(str(out), "resnet18")
  for key in reference:
    np.testing.assert_array_equal(restored[key], reference[key])


def test_wrong_files_are_named(tmp_path):
  state_dict = {k: v.numpy() for k, v in _random_torch_resnet("resnet18").state_dict().items()}
  with pytest.raises(DataError, match=r"does not match resnet50 as torchvision/timm name it; .* missing"):
    pretrained.convert(state_dict, "resnet50", "resnet18.npz")
  state_dict["conv1.1.weight"] = state_dict["conv1.weight"]
  with pytest.raises(DataError, match=r"1 unmatched \(e.g. \['conv1.1.weight'\]\)"):
    pretrained.convert(state_dict, "resnet18")
  with pytest.raises(DataError, match="no such weights file"):
    pretrained.read_weights_file(str(tmp_path / "missing.pth"))


def test_config_initialises_the_backbone_from_a_weights_file(tmp_path):
  state_dict = {k: v.numpy() for k, v in _random_torch_resnet("resnet18").state_dict().items()}
  np.savez(tmp_path / "w.npz", **state_dict)
  config = tiny_config()
  config.model.name = "resnet18"
  config.model.width = 64
  config.model.pretrained = str(tmp_path / "w.npz")
  data = labelled.prepare_data(config, tasks_lib.parse_tasks(config.tasks), None)
  tx, _ = optim.make_optimizer(config.optimizer, 10)
  _, state = train_state.create(config, data.tasks, data.vocabs, parallel.make_mesh(), tx)
  kernel = np.asarray(state["model"]["backbone"]["stem_conv"]["kernel"][...])
  np.testing.assert_array_equal(kernel, state_dict["conv1.weight"].transpose(2, 3, 1, 0))
  mean = np.asarray(state["model"]["backbone"]["blocks"][2]["shortcut"]["bn"]["mean"][...])
  np.testing.assert_array_equal(mean, state_dict["layer2.0.downsample.1.running_mean"])
  assert os.path.exists(config.model.pretrained)


@pytest.mark.slow
def test_stochastic_depth_keeps_its_own_keys_when_weights_are_loaded():
  # Weights files hold no training randomness; the backbone's drop-path keys stay its own.
  kernels = []
  for rate in (0.0, 0.2):
    config = tiny_config()
    config.model.update(name="tf_efficientnet_lite0", pretrained="imagenet", drop_path_rate=rate)
    data = labelled.prepare_data(config, tasks_lib.parse_tasks(config.tasks), None)
    tx, _ = optim.make_optimizer(config.optimizer, 10)
    _, state = train_state.create(config, data.tasks, data.vocabs, parallel.make_mesh(), tx)
    assert ("drop_path_keys" in state["model"]["backbone"]) == (rate > 0)
    kernels.append(np.asarray(state["model"]["backbone"]["stem_conv"]["kernel"][...]))
  np.testing.assert_array_equal(kernels[0], kernels[1])


@pytest.mark.slow
def test_mtl_pretrained_config_fine_tunes_from_imported_weights(tmp_path):
  import json
  state_dict = {k: v.numpy() for k, v in _random_torch_resnet("resnet18").state_dict().items()}
  np.savez(tmp_path / "w.npz", **state_dict)
  args = [sys.executable, "-m", "fashion_jax.main",
          f"--config={REPO}/configs/mtl_pretrained.py:frozen_heads",
          f"--workdir={tmp_path / 'run'}", f"--config.model.pretrained={tmp_path / 'w.npz'}",
          "--config.model.name=resnet18", "--config.data.image_size=32",
          "--config.batch_size=8", "--config.num_train_steps=4", "--config.eval_every_steps=4",
          "--config.checkpoint.every_steps=4", "--config.stages.heads.until_step=2",
          "--config.optimizer.warmup_steps=1", "--config.data.num_threads=2",
          "--verbosity=0"]  # absl's INFO lines, where the arrays loaded are counted.
  result = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=REPO)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Initialised 100 backbone arrays" in result.stderr
  assert "Stage 'joint' from step 3" in result.stdout  # The console's line.
  metrics = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
  assert {"val/articleType/accuracy", "val_ema/articleType/accuracy"} <= set(metrics)


@pytest.mark.slow
def test_mtl_pretrained_starts_from_the_packaged_imagenet_lite0_with_no_other_flag(tmp_path):
  import json
  args = [sys.executable, "-m", "fashion_jax.main", f"--config={REPO}/configs/mtl_pretrained.py",
          f"--workdir={tmp_path / 'run'}", "--config.data.image_size=32",
          "--config.batch_size=8", "--config.num_train_steps=4", "--config.eval_every_steps=4",
          "--config.checkpoint.every_steps=4",
          "--config.optimizer.warmup_steps=1", "--config.data.num_threads=2",
          "--verbosity=0"]  # absl's INFO lines, where the arrays loaded are counted.
  env = {**os.environ, "FASHION_JAX_CACHE": str(tmp_path / "cache")}
  result = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  # Lite0's 49 convolution kernels and 49 BatchNorms (4 arrays each): 245 arrays.
  assert "Initialised 245 backbone arrays from config.model.pretrained=imagenet" in result.stderr
  assert (tmp_path / "cache" / "pretrained" / "tf_efficientnet_lite0_imagenet" / "model.json").exists()
  config = json.loads((tmp_path / "run" / "config.json").read_text())
  assert config["model"]["name"] == "tf_efficientnet_lite0"
  metrics = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
  assert np.isfinite(metrics["val/articleType/accuracy"])


def test_the_demos_pretrained_variant_is_mtl_pretrained_on_the_embedded_sample():
  from fashion_jax.config_lib import load_sibling_config
  demo = load_sibling_config(os.path.join(REPO, "configs", "demo.py"), "demo")
  variant = load_sibling_config(os.path.join(REPO, "configs", "demo.py"), "demo", "pretrained")
  recipe = load_sibling_config(os.path.join(REPO, "configs", "mtl_pretrained.py"),
                               "mtl_pretrained")
  assert (demo.model.name, demo.model.pretrained) == ("resnet18", "")
  assert variant.model.name == recipe.model.name == "tf_efficientnet_lite0"
  assert variant.model.pretrained == "imagenet"
  assert variant.optimizer.backbone_lr_multiplier == recipe.optimizer.backbone_lr_multiplier
  assert variant.data.image_size == recipe.data.image_size
  # The demo's sample and budget, whichever the model.
  for field in ("num_epochs", "eval_every_steps", "log_every_steps"):
    assert variant[field] == demo[field], field
  assert variant.datasets.products.root == demo.datasets.products.root == ""
