"""The catalog index (FAISS) over a served model's outputs: exact and HNSW search,
label search, resumable sharded builds."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, xla_flags
from fashion_jax.errors import ConfigError
from fashion_jax.serving import catalog_index, index_build, label_search
from fashion_jax.serving import runtimes



@pytest.fixture
def workdir(served_workdir):
  return served_workdir


@pytest.mark.slow
def test_index_holds_every_product_and_searches_like_exact_numpy(index_dir):
  index = catalog_index.CatalogIndex.load(index_dir)
  assert len(index) == index.manifest["count"] and index.manifest["shards"] == -(-len(index) // 16)
  assert set(index.catalog_labels) == {"articleType", "gender", "subCategory", "season"}
  hits = index.similar(index.vectors[:3], k=5)
  scores = index.vectors[:3] @ index.vectors.T
  for q, row in enumerate(hits):
    assert [r for r, _ in row][0] == q  # Each product is its own nearest neighbour.
    np.testing.assert_allclose([s for _, s in row], np.sort(scores[q])[::-1][:5], atol=1e-5)
  # A filter keeps only products predicted with that label; catalog filters read the table.
  gender = index.outputs["gender"]["classes"][int(index.top_class["gender"][0])]
  for row, _ in index.similar(index.vectors[:1], k=50, filters=[f"gender={gender}"])[0]:
    assert index.tags(row)["gender"][0]["label"] == gender
  value = index.catalog_labels["articleType"][0]
  found = index.similar(index.vectors[:1], k=50, filters=[f"catalog.articleType={value}"])[0]
  assert found and all(index.catalog_labels["articleType"][r] == value for r, _ in found)
  with pytest.raises(ValueError, match="not one of gender's labels"):
    index.similar(index.vectors[:1], filters=["gender=Robots"])
  with pytest.raises(ValueError, match="catalog has no column 'colour'"):
    index.filter_mask(["catalog.colour=Red"])


@pytest.mark.slow
def test_hnsw_index_with_filters_matches_exact_search_on_a_small_catalog(index_dir):
  exact = catalog_index.CatalogIndex.load(index_dir)
  approximate = catalog_index.CatalogIndex.load(
      index_dir, catalog_index.SearchSettings(exact_max=8, exact_filtered_max=4))
  approximate.vector_index = catalog_index.build_vector_index(approximate.vectors,
                                                              approximate.settings)
  assert hasattr(approximate.vector_index, "hnsw")
  gender = exact.outputs["gender"]["classes"][int(exact.top_class["gender"][0])]
  for filters in ([], [f"gender={gender}"]):
    want = exact.similar(exact.vectors[:4], 5, filters)
    got = approximate.similar(exact.vectors[:4], 5, filters)
    for got_row, want_row in zip(got, want):  # Same products (near-ties may swap places).
      assert {r for r, _ in got_row} == {r for r, _ in want_row}
      np.testing.assert_allclose([s for _, s in got_row], [s for _, s in want_row], atol=1e-5)


@pytest.mark.slow
def test_label_search_ranks_by_probability_and_scores_against_catalog_labels(index_dir):
  index = catalog_index.CatalogIndex.load(index_dir)
  label = index.outputs["articleType"]["classes"][0]
  hits = index.by_label("articleType", label, k=10)
  probabilities = [p for _, p in hits]
  assert probabilities == sorted(probabilities, reverse=True) and len(hits) == 10
  column = index.scores["articleType"][:, 0]
  assert probabilities[0] == pytest.approx(column.max())
  scores = label_search.all_scores(index)
  assert set(scores) == {"articleType", "gender", "subCategory"}
  present = len(set(index.catalog_labels["gender"]) & set(index.outputs["gender"]["classes"]))
  assert scores["gender"]["queries"] == present
  for values in scores.values():
    assert 0 <= values["precision_at_1"] <= 1 and 0 < values["mrr"] <= 1


@pytest.mark.slow
def test_index_build_resumes_and_splits_between_workers(exported, workdir, tmp_path):
  table = index_build.read_catalog("split:test", workdir)
  model = runtimes.OnnxModel(exported)
  calls = []

  def counted(images):
    calls.append(len(images))
    return model(images)

  counted.metadata = model.metadata
  out = str(tmp_path / "index")
  kwargs = dict(catalog="split:test", model_path=exported, shard_size=16, batch_size=8)
  first = index_build.build(counted, table, out, workers=2, worker=0, **kwargs)
  assert not first["complete"] and sum(calls) == 32  # Shards 0 and 2 of 0..2.
  with pytest.raises(ConfigError, match="did not finish"):
    catalog_index.CatalogIndex.load(out)
  calls.clear()
  second = index_build.build(counted, table, out, workers=2, worker=1, **kwargs)
  assert second["complete"] and sum(calls) == 16
  calls.clear()
  os.remove(catalog_index.shard_path(out, 1))  # As if interrupted while writing it.
  manifest = json.load(open(os.path.join(out, "index.json")))
  manifest["complete"] = False
  json.dump(manifest, open(os.path.join(out, "index.json"), "w"))
  index_build.build(counted, table, out, **kwargs)
  assert sum(calls) == 16
  assert len(catalog_index.CatalogIndex.load(out)) == len(table)
  with pytest.raises(ConfigError, match="another model or catalog"):
    index_build.build(counted, table, out, **{**kwargs, "catalog": "split:val"})


@pytest.mark.slow
def test_index_build_command_splits_batches_over_devices(workdir, index_dir, tmp_path):
  out = tmp_path / "index"
  result = subprocess.run(
      [sys.executable, "-m", "fashion_jax", "index", "build", f"--model={workdir}",
       "--checkpoint=latest", "--catalog=split:test", f"--out={out}", "--batch_size=7"],
      capture_output=True, text=True, timeout=300, cwd=REPO,
      env={**os.environ, "XLA_FLAGS": xla_flags("--xla_force_host_platform_device_count=2")})
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads(result.stdout.strip().splitlines()[-1])["complete"]
  live, onnx = catalog_index.CatalogIndex.load(str(out)), catalog_index.CatalogIndex.load(index_dir)
  assert list(live.ids) == list(onnx.ids)
  np.testing.assert_allclose(live.vectors, onnx.vectors, atol=1e-4)
  for name in onnx.scores:
    np.testing.assert_allclose(live.scores[name], onnx.scores[name], atol=1e-4)


def test_the_vector_index_is_exact_up_to_its_limit_and_approximate_beyond():
  rng = np.random.default_rng(0)
  vectors = rng.normal(size=(300, 16)).astype(np.float32)
  vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
  exact = catalog_index.build_vector_index(vectors, catalog_index.SearchSettings(exact_max=300))
  approximate = catalog_index.build_vector_index(vectors,
                                                 catalog_index.SearchSettings(exact_max=100))
  assert not hasattr(exact, "hnsw") and hasattr(approximate, "hnsw")
  _, found = exact.search(vectors[:20], 5)
  expected = np.argsort(-(vectors[:20] @ vectors.T), axis=1, kind="stable")[:, :5]
  np.testing.assert_array_equal(found, expected)
  _, near = approximate.search(vectors[:20], 1)
  assert (near[:, 0] == np.arange(20)).mean() >= 0.95  # Each vector finds itself.
