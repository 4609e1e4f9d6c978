"""The output formats users parse, pinned on the committed v1 run (tests/data/checkpoint_v1):
predict's JSON lines and evaluate's metrics.json, as written before the task kinds moved
into their own modules (tests/data/checkpoint_v1_golden.py wrote the expected files)."""

import json
import os
import shutil

import numpy as np
import pytest

from conftest import REPO
from fashion_jax.evaluation import trained
from fashion_jax.tools import predict
from fashion_jax.evaluation import scoring
from fashion_jax.data.product_images import SAMPLE_DIR

V1 = os.path.join(REPO, "tests", "data", "checkpoint_v1")


@pytest.fixture(scope="module")
def v1_workdir(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("formats") / "v1"
  shutil.copytree(V1, workdir)
  return str(workdir)


def _assert_same(got, expected, where="", samples=None) -> None:
  """Same keys, lists and strings; numbers equal to 1e-5, losses to a relative 1e-3,
  retrieval recalls to one query of `samples`.

  The stored files were written on another machine, and XLA:CPU's float32 sums differ
  by CPU in their last bits. Class decisions do not move with that; a loss can: the
  embedding's batch-hard triplet loss takes the hardest pair and a hinge, which turn
  ~1e-8 changes of the embeddings into ~5e-5 of the loss (0.2651547 vs 0.2651404
  between an AMD EPYC and an Intel Xeon); and so can a rank where two scores are all but
  tied: a recall@k where a query's k-th and (k+1)-th neighbours are (recall@10 36 or 37
  of 48 queries), a ROC AUC where a positive's and a negative's scores are (gender's
  macro AUC 0.56729 vs 0.56751: this v1 model is near chance there)."""
  assert type(got) is type(expected) or {type(got), type(expected)} <= {int, float}, where
  if isinstance(expected, dict):
    assert list(got) == list(expected), f"{where}: keys {list(got)} != {list(expected)}"
    for key in expected:
      _assert_same(got[key], expected[key], f"{where}/{key}", expected.get("samples"))
  elif isinstance(expected, list):
    assert len(got) == len(expected), where
    for i, (g, e) in enumerate(zip(got, expected)):
      _assert_same(g, e, f"{where}[{i}]")
  elif isinstance(expected, float) and "/recall_at_" in where and samples:
    assert abs(got - expected) <= 1 / samples + 1e-9, where
  elif isinstance(expected, float) and where.endswith("roc_auc"):
    assert got == pytest.approx(expected, abs=1e-3, nan_ok=True), where
  elif isinstance(expected, float) and where.endswith("loss"):
    assert got == pytest.approx(expected, rel=1e-3, abs=1e-5, nan_ok=True), where
  elif isinstance(expected, float):
    assert got == pytest.approx(expected, abs=1e-5, nan_ok=True), where
  else:
    assert got == expected, where


@pytest.mark.slow
def test_predict_json_lines_keep_their_format(v1_workdir):
  with open(os.path.join(V1, "predict_lines.jsonl")) as f:
    expected = [json.loads(line) for line in f]
  run = trained.load(v1_workdir, "latest")
  paths = [os.path.join(SAMPLE_DIR, "images", line["image"]) for line in expected]
  got = []
  for line in predict.predict_lines(run, paths, top_k=2, with_embedding=True):
    line["image"] = os.path.basename(line["image"])
    got.append(json.loads(json.dumps(line)))  # As a reader of the file sees it.
  _assert_same(got, expected)


def test_evaluate_metrics_json_keeps_its_format(v1_workdir):
  with open(os.path.join(V1, "evaluate_test_metrics.json")) as f:
    expected = json.load(f)
  scoring.evaluate(v1_workdir, scoring.Options(split="test", checkpoint="latest", grid_images=0))
  with open(os.path.join(v1_workdir, "eval", "test", "metrics.json")) as f:
    saved = json.load(f)
  assert {"workdir", "split", "checkpoint_step", "ema", "data", "metrics", "files"} <= set(saved)
  got = {task: dict(sorted(values.items())) for task, values in sorted(saved["metrics"].items())}
  _assert_same(got, expected)
  assert np.isfinite(got["articleType"]["accuracy"])
