"""Export: ONNX and jax.export files against the live model, on real images."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, sample_image_paths
from fashion_jax.evaluation import trained
from fashion_jax.errors import ConfigError
from fashion_jax.serving import artifact, export
from fashion_jax.serving import runtimes



@pytest.fixture
def workdir(served_workdir):
  return served_workdir


def live_outputs(workdir, images):
  """The workdir's model as evaluation runs it (the CPU custom-VJP convolutions)."""
  run = trained.load(workdir, "latest")
  return {k: np.asarray(v) for k, v in trained.predict_fn(run)(images).items()}


@pytest.mark.slow
def test_onnx_and_jax_exports_match_the_live_model_on_real_images(workdir, exported):
  meta = artifact.read_metadata(exported)
  assert {o["name"]: o["form"] for o in meta["outputs"]} == {
      "articleType": "classes", "gender": "classes", "subCategory": "classes",
      "season": "attributes", "embedding": "embedding"}
  assert set(meta["jax_platforms"]) == {"cpu", "cuda", "tpu"}
  assert meta["hierarchy_decoding"] == [{"child": "articleType", "parent": "subCategory"}]
  images = np.stack([artifact.decode(open(p, "rb").read(), meta)
                     for p in sample_image_paths(6)])
  want = live_outputs(workdir, images)
  for model in (runtimes.OnnxModel(exported), runtimes.JaxExportModel(exported)):
    for batch in (images, images[:1]):  # The batch dimension is symbolic.
      got = model(batch.astype(np.float32))
      for name in want:
        assert got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], want[name][:len(batch)], atol=1e-4, rtol=0)
  assert max(max(v.values()) for v in meta["parity"].values()) < 1e-4


@pytest.mark.slow
def test_onnx_inference_index_and_service_run_where_jax_cannot_be_imported(workdir, exported, tmp_path):
  paths = sample_image_paths(3)
  script = f"""
import sys, json
for name in ("jax", "jaxlib", "flax", "optax", "orbax"):
  sys.modules[name] = None  # import jax -> ImportError
import numpy as np
from fashion_jax.serving import artifact, runtimes
model = runtimes.OnnxModel({exported!r})
images = np.stack([artifact.decode(open(p, "rb").read(), model.metadata) for p in {paths!r}])
np.savez({str(tmp_path / "out.npz")!r}, **model(images.astype(np.float32)))
# The index of a folder of photos and the service need no JAX either.
from fashion_jax.serving import app, catalog_index, index_build, runtimes
model = runtimes.load_model({exported!r})
table = index_build.read_catalog({os.path.dirname(paths[0])!r})
index_build.build(model, table, {str(tmp_path / "index")!r}, catalog="photos",
                  model_path={exported!r})
app.create_app(model, catalog_index.CatalogIndex.load({str(tmp_path / "index")!r}))
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "flax"))))
"""
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads(result.stdout.strip().splitlines()[-1]) == ["flax", "jax"]  # The None stubs.
  images = np.stack([artifact.decode(open(p, "rb").read(), artifact.read_metadata(exported))
                     for p in paths])
  want = live_outputs(workdir, images)
  with np.load(tmp_path / "out.npz") as got:
    for name in want:
      np.testing.assert_allclose(got[name], want[name], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", [pytest.param("convnext_test", marks=pytest.mark.slow),
                                  pytest.param("vit_test", marks=pytest.mark.slow),
                                  pytest.param("efficientnet_test", marks=pytest.mark.slow),
                                  "efficientnet_lite_test",
                                  pytest.param("resnet18", marks=pytest.mark.slow)])
def test_every_backbone_family_converts_to_onnx_with_the_same_features(name, tmp_path):
  import jax
  import ml_collections
  import onnxruntime
  from flax import nnx
  from fashion_jax.models import heads
  model_config = ml_collections.ConfigDict({"name": name, "width": 8, "conv": "xla"})
  model = heads.build_model(model_config, [], {}, 0, image_size=64)
  # Random parameters everywhere (zero-initialised residual gates would hide a branch).
  params = nnx.state(model, nnx.Param)
  leaves, treedef = jax.tree.flatten(params)
  rng = np.random.RandomState(1)
  nnx.update(model, jax.tree.unflatten(treedef, [
      np.asarray(p) + rng.normal(0, 0.05, np.shape(p)).astype(np.float32) for p in leaves]))
  graphdef, state = nnx.split(model)

  def features(images):
    return (nnx.merge(graphdef, state).backbone(images, False),)

  images = np.random.RandomState(0).uniform(-2, 2, (2, 64, 64, 3)).astype(np.float32)
  proto = export.onnx_model(features, 64, ["features"])
  got = onnxruntime.InferenceSession(proto.SerializeToString()).run(None, {"images": images})[0]
  want = np.asarray(jax.jit(features)(images)[0])
  assert np.abs(want).max() > 1e-3  # Features that carry signal, not zeros.
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_a_bfloat16_model_exports_float32_outputs(workdir, tmp_path):
  run = tmp_path / "bf16_run"
  shutil.copytree(workdir, run)  # The same float32 parameters, computed in bfloat16.
  config = json.loads((run / "config.json").read_text())
  config["model"]["dtype"] = "bfloat16"
  (run / "config.json").write_text(json.dumps(config))
  meta = export.export_run(str(run), str(tmp_path / "f32"), checkpoint="latest")
  assert meta["compute_dtype"] == "float32" and meta["source"]["dtype"] == "bfloat16"
  with pytest.raises(ConfigError, match="jax.export only"):
    export.export_run(str(run), str(tmp_path / "x"), checkpoint="latest", dtype="model")
  export.export_run(str(run), str(tmp_path / "bf16"), checkpoint="latest", dtype="model",
                    onnx=False)
  images = np.stack([artifact.decode(open(p, "rb").read(), meta)
                     for p in sample_image_paths(4)]).astype(np.float32)
  full = runtimes.OnnxModel(str(tmp_path / "f32"))(images)
  half = runtimes.JaxExportModel(str(tmp_path / "bf16"))(images)
  want = live_outputs(workdir, images.astype(np.uint8))
  for name in want:
    assert full[name].dtype == half[name].dtype == np.float32
    np.testing.assert_allclose(full[name], want[name], atol=1e-4, rtol=0)
    np.testing.assert_allclose(half[name], want[name], atol=5e-2, rtol=0)
  assert max(np.abs(half[n] - want[n]).max() for n in want) > 0  # Computed in bfloat16.


@pytest.mark.slow
def test_export_refuses_to_overwrite_a_folder_that_is_not_an_export(workdir, tmp_path):
  (tmp_path / "keep").mkdir()
  (tmp_path / "keep" / "notes.txt").write_text("mine")
  with pytest.raises(ConfigError, match="not an export folder"):
    export.export_run(workdir, str(tmp_path / "keep"), checkpoint="latest", onnx=False)
  assert (tmp_path / "keep" / "notes.txt").read_text() == "mine"
  assert [p for p in os.listdir(tmp_path) if p.startswith(".export_")] == []
