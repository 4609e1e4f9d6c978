"""ViT (models/vit.py): features equal timm's and torchvision's own classes with the
same weights, position embeddings resampled as timm does for another image size."""

import numpy as np
import pytest
import timm
import torch
import torchvision

from conftest import imported_features, tiny_config
from fashion_jax import validation
from fashion_jax.errors import ConfigError

_IMAGES = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)


def _timm_vit_test(global_pool: str):
  """timm's class at vit_test's size, its weights made for 224 px and run at 64 px: timm
  resamples the position embeddings on the fly (dynamic_img_size), as the import must."""
  torch.manual_seed(0)
  model = timm.models.vision_transformer.VisionTransformer(
      img_size=224, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=0,
      global_pool=global_pool, dynamic_img_size=True)
  with torch.no_grad():  # timm starts them near zero: make the position terms matter.
    model.pos_embed.normal_(0, 1)
    model.cls_token.normal_(0, 1)
  return model.eval()


@pytest.mark.parametrize("global_pool,pooling", [("token", "token"), ("avg", "mean")])
def test_features_equal_timms_vit_with_resampled_positions(global_pool, pooling):
  model = _timm_vit_test(global_pool)
  assert model.pos_embed.shape[1] == 28 * 28 + 1  # Made for 224 px, used at 64 px.
  with torch.no_grad():
    expected = model(torch.tensor(_IMAGES)).numpy()
  got = imported_features("vit_test", model, _IMAGES, 64, pooling=pooling)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_features_equal_torchvisions_vit():
  torch.manual_seed(0)
  model = torchvision.models.VisionTransformer(image_size=64, patch_size=8, num_layers=2,
                                               num_heads=2, hidden_dim=32, mlp_dim=128).eval()
  with torch.no_grad():  # torchvision's features: the class token after the encoder.
    tokens = model._process_input(torch.tensor(_IMAGES))
    tokens = torch.cat([model.class_token.expand(len(_IMAGES), -1, -1), tokens], dim=1)
    expected = model.encoder(tokens)[:, 0].numpy()
  got = imported_features("vit_test", model, _IMAGES, 64)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_an_image_size_off_the_patch_grid_is_a_config_error():
  config = tiny_config()
  config.model.name = "vit_test"
  config.data.image_size = 60
  with pytest.raises(ConfigError, match="config.data.image_size=60 must be a multiple of "
                                        "vit_test's patch size 8"):
    validation.validate_config(config)
