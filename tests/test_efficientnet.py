"""EfficientNet (models/efficientnet.py): features equal torchvision's and timm's own
B0 with the same weights and random BatchNorm statistics; timm's TensorFlow ports pad
like TensorFlow's 'SAME'."""

import numpy as np
import pytest
import timm
import torch
import torchvision

from conftest import imported_features, randomize_batch_norms
from fashion_jax.models import efficientnet

_IMAGES = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)


@pytest.mark.parametrize("conv", ["xla", "matmul"])
def test_features_equal_torchvisions_efficientnet_b0(conv):
  torch.manual_seed(0)
  model = randomize_batch_norms(torchvision.models.efficientnet_b0())
  with torch.no_grad():
    expected = model.avgpool(model.features(torch.tensor(_IMAGES))).flatten(1).numpy()
  got = imported_features("efficientnet_b0", model, _IMAGES, 64, conv)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,conv", [("efficientnet_b0", "xla"), ("tf_efficientnet_b0", "xla"),
                                       ("tf_efficientnet_b0", "matmul")])
def test_features_equal_timms_efficientnet_b0(name, conv):
  torch.manual_seed(0)
  model = randomize_batch_norms(timm.create_model(name, num_classes=0))
  with torch.no_grad():
    expected = model(torch.tensor(_IMAGES)).numpy()
  got = imported_features(name, model, _IMAGES, 64, conv)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_compound_scaling_gives_the_published_widths_and_depths():
  # B5: stem 48, 39 blocks, 2048 features (torchvision and timm).
  stages = efficientnet.block_settings(efficientnet.ARCHITECTURES["efficientnet_b5"])
  assert stages[0][0].in_ch == 48
  assert sum(len(stage) for stage in stages) == 39
  assert 4 * stages[-1][-1].out_ch == 2048
