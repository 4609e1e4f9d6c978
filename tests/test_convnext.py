"""ConvNeXt (models/convnext.py): features equal torchvision's and timm's own classes
with the same weights."""

import numpy as np
import pytest
import timm
import torch
from torchvision.models import convnext as torchvision_convnext

from conftest import imported_features
from fashion_jax.errors import DataError
from fashion_jax.models import backbones

_IMAGES = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)


def _torchvision_convnext_test():
  # torchvision's class at convnext_test's size: (8, 16, 32, 64) channels, a block a stage.
  config = torchvision_convnext.CNBlockConfig
  torch.manual_seed(0)
  model = torchvision_convnext.ConvNeXt([config(8, 16, 1), config(16, 32, 1), config(32, 64, 1),
                                         config(64, None, 1)], layer_scale=0.5)
  return model.eval()


@pytest.mark.parametrize("conv", ["xla", "matmul"])
def test_features_equal_torchvisions_convnext(conv):
  model = _torchvision_convnext_test()
  with torch.no_grad():  # torchvision's features: pool, then the classifier's LayerNorm.
    expected = model.classifier[:2](model.avgpool(model.features(torch.tensor(_IMAGES)))).numpy()
  got = imported_features("convnext_test", model, _IMAGES, 64, conv)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_features_equal_timms_convnext():
  torch.manual_seed(1)
  model = timm.models.convnext.ConvNeXt(depths=(1, 1, 1, 1), dims=(8, 16, 32, 64),
                                        num_classes=0, ls_init_value=0.5).eval()
  with torch.no_grad():
    expected = model(torch.tensor(_IMAGES)).numpy()
  got = imported_features("convnext_test", model, _IMAGES, 64)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_a_file_of_another_network_names_what_does_not_match():
  state_dict = {k: v.numpy() for k, v in _torchvision_convnext_test().state_dict().items()}
  del state_dict["features.1.0.layer_scale"]
  state_dict["features.1.0.extra.weight"] = np.zeros(1, np.float32)
  with pytest.raises(DataError, match=r"w.pth does not match convnext_test as torchvision or "
                     r"timm name it; nearest, torchvision: 1 missing \(e.g. "
                     r"\['features.1.0.layer_scale'\]\), 1 unmatched"):
    backbones.family("convnext_test").convert_foreign("convnext_test", state_dict, "w.pth")
