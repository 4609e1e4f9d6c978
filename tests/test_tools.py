"""evaluate / predict / search / compare on a workdir trained inside the test session."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, read_sample_rows, tiny_config, train_tool_run
from fashion_jax.evaluation import plots, trained
from fashion_jax.training import train
from fashion_jax.tools import compare, predict
from fashion_jax.serving import visual_search
from fashion_jax.evaluation import scoring
from fashion_jax.data.product_images import SAMPLE_DIR
from fashion_jax.errors import CheckpointMismatchError, ConfigError
from fashion_jax.tasks import sigmoid, task_config


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  return train_tool_run(str(tmp_path_factory.mktemp("run")))


def _png_size(path):
  with Image.open(path) as image:
    image.load()
    return image.size


@pytest.fixture(scope="module")
def evaluated(workdir):
  return scoring.evaluate(workdir,
      scoring.Options(split="test", checkpoint="latest", grid_images=8, hierarchy_mode="joint"))


@pytest.mark.slow
def test_evaluate_writes_metrics_reports_and_plots(workdir, evaluated):
  out = os.path.join(workdir, "eval", "test")
  with open(os.path.join(out, "metrics.json")) as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(evaluated))
  assert saved["checkpoint_step"] == 4 and saved["split"] == "test"
  article = saved["metrics"]["articleType"]
  for key in ("accuracy", "top3_accuracy", "top5_accuracy", "macro_precision", "macro_recall",
              "macro_f1", "weighted_precision", "weighted_recall", "weighted_f1",
              "macro_roc_auc"):
    assert 0 <= article[key] <= 1, key
  # Weighted recall is the accuracy; a top-5 hit includes every top-1 hit.
  np.testing.assert_allclose(article["weighted_recall"], article["accuracy"], rtol=1e-6)
  assert article["top5_accuracy"] >= article["accuracy"]
  # Tuned thresholds and, beside them, the configured 0.5.
  assert {"micro_f1", "mAP", "hamming_loss", "micro_f1_at_0.5", "macro_f1_at_0.5"} <= set(
      saved["metrics"]["season"])
  assert "recall_at_1" in saved["metrics"]["embedding"]
  assert 0 <= saved["metrics"]["articleType"]["consistency_with_subCategory"] <= 1
  assert 0 <= saved["metrics"]["articleType"]["accuracy_joint_hierarchy"] <= 1
  assert 0 <= saved["metrics"]["subCategory"]["accuracy_joint_hierarchy"] <= 1
  # The per-class CSV adds up to the split.
  with open(os.path.join(out, "articleType_per_class.csv")) as f:
    rows = list(csv.DictReader(f))
  assert sum(int(r["support"]) for r in rows) == article["samples"]
  assert {r["class"] for r in rows} == set(json.load(open(os.path.join(workdir, "vocab.json")))
                                           ["articleType"]["classes"])
  sizes = {"confusion_articleType.png": (800, 700), "roc_articleType.png": (700, 600),
           "predictions.png": (1280, 760), "curves.png": (1500, 700)}
  for name, size in sizes.items():
    assert _png_size(os.path.join(out, name)) == size, name
  assert _png_size(os.path.join(out, "metrics.png"))[1] == 500
  assert set(sizes) | {"metrics.png", "metrics.json"} - {"metrics.json"} <= set(saved["files"])


@pytest.mark.slow
def test_evaluate_encodes_labels_with_the_runs_own_classes(tmp_path):
  data_root = tmp_path / "data"
  shutil.copytree(SAMPLE_DIR, data_root)
  config = tiny_config(tasks={"gender": task_config("softmax", "gender")},
                       root=str(data_root))
  config.checkpoint.best_metric = "val/gender/accuracy"
  run = str(tmp_path / "run")
  train.train_and_evaluate(config, run)
  # The data drifts after training: 'Men' and 'Unisex' swap, so a vocabulary rebuilt
  # from it (ordered by frequency) would give those class ids to other names.
  csv_path = data_root / "styles.csv"
  csv_path.write_text(csv_path.read_text().replace(",Men,", ",TMP,").replace(
      ",Unisex,", ",Men,").replace(",TMP,", ",Unisex,"))
  from fashion_jax.data import labelled
  from fashion_jax import tasks as tasks_lib
  test_rows = labelled.prepare_data(config, tasks_lib.parse_tasks(config.tasks), None).splits[
      "test"].table.columns["gender"].tolist()
  assert test_rows.count("Men") != test_rows.count("Unisex")  # Else the check below is moot.
  scoring.evaluate(run, scoring.Options(split="test", checkpoint="latest"))
  with open(os.path.join(run, "eval", "test", "gender_per_class.csv")) as f:
    support = {row["class"]: int(row["support"]) for row in csv.DictReader(f)}
  # Rows in the order of the model's outputs: the classes the run was trained with.
  assert list(support) == list(trained.load(run, "latest").task("gender").classes)
  assert support["Men"] == test_rows.count("Men")
  assert support["Unisex"] == test_rows.count("Unisex")


def test_confusion_folding_keeps_every_count():
  confusion = np.arange(36).reshape(6, 6)
  folded, names = plots.fold_confusion(confusion, list("abcdef"), 3)
  assert names[-1] == "(other)" and len(names) == 3
  assert folded.sum() == confusion.sum()
  # The two most frequent true classes (f, e) keep their own row and column.
  assert names[:2] == ["e", "f"] and folded[1, 1] == confusion[5, 5]


def _odd_images(tmp_path):
  gray = tmp_path / "gray.png"
  Image.fromarray(np.full((40, 90), 128, np.uint8), "L").save(gray)
  rgba = tmp_path / "rgba.png"
  Image.fromarray(np.zeros((300, 100, 4), np.uint8), "RGBA").save(rgba)
  broken = tmp_path / "broken.jpg"
  broken.write_bytes(b"not an image")
  return [str(gray), str(rgba), str(broken)]


@pytest.mark.slow
def test_predict_tags_any_image_and_names_unreadable_ones(workdir, tmp_path):
  run = trained.load(workdir, "latest")
  jpeg = os.path.join(SAMPLE_DIR, "images", f"{read_sample_rows()[0]['id']}.jpg")
  lines = list(predict.predict_lines(run, [jpeg, *_odd_images(tmp_path)], top_k=2,
                                     with_embedding=True, batch_size=2))
  assert [line["image"] for line in lines] == [jpeg, *_odd_images(tmp_path)]
  classes = {t.name: t.classes for t in run.tasks}
  for line in lines[:3]:
    top = line["predictions"]["articleType"]
    assert len(top) == 2 and top[0]["probability"] >= top[1]["probability"]
    assert {p["label"] for p in top} <= set(classes["articleType"])
    # Attributes above their own thresholds, chosen on validation when training ended.
    season = next(t for t in run.tasks if t.name == "season")
    thresholds = dict(zip(season.classes, sigmoid.thresholds(season)))
    assert all(p["score"] >= thresholds[p["label"]] for p in line["predictions"]["season"])
    np.testing.assert_allclose(np.linalg.norm(line["embeddings"]["embedding"]), 1, rtol=1e-4)
  assert "error" in lines[3] and "corrupt" in lines[3]["error"]
  # The same image gives the same answer as the evaluation pipeline's preprocessing.
  again = next(predict.predict_lines(run, [jpeg], top_k=2))
  assert again["predictions"] == lines[0]["predictions"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["predicted", "joint"])
def test_predict_can_follow_the_learned_hierarchy(workdir, mode):
  from fashion_jax import hierarchy
  run = trained.load(workdir, "latest")
  learned = hierarchy.load(workdir)
  parents = learned["articleType"]["parents"]
  classes = {t.name: list(t.classes) for t in run.tasks}
  images = [os.path.join(SAMPLE_DIR, "images", f"{r['id']}.jpg") for r in read_sample_rows()[:12]]
  for line in predict.predict_lines(run, images, top_k=1, hierarchy_mode=mode):
    article = classes["articleType"].index(line["predictions"]["articleType"][0]["label"])
    sub = classes["subCategory"].index(line["predictions"]["subCategory"][0]["label"])
    assert parents[article] in (sub, -1)


@pytest.mark.slow
def test_predict_command_exit_status(workdir, tmp_path):
  args = [sys.executable, "-m", "fashion_jax", "predict", f"--workdir={workdir}",
          "--checkpoint=latest", f"--out={tmp_path / 'out.jsonl'}", *_odd_images(tmp_path)]
  result = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=REPO)
  assert result.returncode == 1 and "1 of 3 images could not be read" in result.stderr
  lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
  assert len(lines) == 3 and "predictions" in lines[0]
  missing = subprocess.run([sys.executable, "-m", "fashion_jax", "evaluate",
                            f"--workdir={tmp_path}/nope"], capture_output=True, text=True,
                           timeout=300, cwd=REPO)
  assert missing.returncode == 2 and f"{tmp_path}/nope does not exist" in missing.stderr


@pytest.mark.slow
def test_search_index_and_query_find_the_image_itself(workdir, tmp_path):
  gallery = tmp_path / "gallery"
  os.makedirs(gallery / "shoes")
  rows = read_sample_rows()[:12]
  for row in rows:
    shutil.copy(os.path.join(SAMPLE_DIR, "images", f"{row['id']}.jpg"), gallery / "shoes")
  index = visual_search.build_index(workdir, str(gallery), str(tmp_path / "g"),
                                    checkpoint="latest")
  assert index["images"] == 12 and index["dim"] == 16
  query = os.path.join(SAMPLE_DIR, "images", f"{rows[3]['id']}.jpg")
  sheet = str(tmp_path / "sheet.png")
  results = visual_search.query(str(tmp_path / "g"), [query], k=5, sheet=sheet)
  assert len(results) == 1 and len(results[0]["results"]) == 5
  best = results[0]["results"][0]
  assert os.path.basename(best["image"]) == os.path.basename(query)
  np.testing.assert_allclose(best["score"], 1.0, atol=1e-4)
  scores = [r["score"] for r in results[0]["results"]]
  assert scores == sorted(scores, reverse=True)
  # Query + 5 results per row: 6 columns of 220 px.
  assert _png_size(sheet) == (6 * 220, 260)


@pytest.mark.slow
def test_tools_reject_a_workdir_whose_tasks_changed(workdir, tmp_path):
  copy = tmp_path / "changed"
  shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("eval"))
  config = json.loads((copy / "config.json").read_text())
  config["tasks"]["gender"]["column"] = "usage"
  (copy / "config.json").write_text(json.dumps(config))
  with pytest.raises(CheckpointMismatchError, match="vocab.json was written for tasks"):
    trained.load(str(copy))
  with pytest.raises(ConfigError, match=r"--checkpoint=99: .* has checkpoints at steps \[2, 4\]"):
    trained.load(workdir, "99")


@pytest.mark.slow
def test_compare_tables_runs_and_computes_delta_m(workdir, evaluated, tmp_path):
  other = tmp_path / "tuned"
  shutil.copytree(workdir, other)
  metrics_path = other / "eval" / "test" / "metrics.json"
  saved = json.loads(metrics_path.read_text())
  saved["metrics"]["articleType"]["accuracy"] *= 1.5
  saved["metrics"]["gender"]["macro_f1"] *= 0.8
  metrics_path.write_text(json.dumps(saved))
  result = compare.compare([workdir, str(other)], "test", baselines=[workdir],
                           out=str(tmp_path / "cmp"))
  run_name, tuned_name = result["names"]
  assert result["delta_m"][run_name] == 0.0
  # Over the headline metrics (2 per softmax task, 2 for the sigmoid, 1 for the
  # embedding) whose baseline is not 0 (no relative change from 0): +50% on one, -20%
  # on another.
  from fashion_jax.tasks import KINDS
  with open(os.path.join(workdir, "config.json")) as f:
    kinds = {t: c["kind"] for t, c in json.load(f)["tasks"].items()}
  counted = [(t, m) for t, kind in kinds.items() for m in KINDS[kind].headline
             if evaluated["metrics"][t][m] != 0]
  assert ("articleType", "accuracy") in counted and ("gender", "macro_f1") in counted
  np.testing.assert_allclose(result["delta_m"][tuned_name], 100 * (0.5 - 0.2) / len(counted),
                             rtol=1e-9)
  with open(tmp_path / "cmp" / "comparison.csv") as f:
    rows = list(csv.DictReader(f))
  accuracy = next(r for r in rows if r["task"] == "articleType" and r["metric"] == "accuracy")
  np.testing.assert_allclose(float(accuracy[tuned_name]), 1.5 * float(accuracy[run_name]))
  assert _png_size(tmp_path / "cmp" / "comparison.png")[1] == 500
  assert "| (all) | Δm % vs baselines |" in compare.markdown(result)


@pytest.mark.slow
def test_evaluate_scores_other_labelled_data_with_the_runs_classes(workdir, evaluated,
                                                                   tmp_path):
  # A holdout folder in the run's layout: 40 sample rows, one with an articleType the
  # training split never had.
  rows = read_sample_rows()[:40]
  holdout = tmp_path / "holdout"
  os.makedirs(holdout / "images")
  for row in rows:
    shutil.copy(os.path.join(SAMPLE_DIR, "images", f"{row['id']}.jpg"), holdout / "images")
  rows[5] = {**rows[5], "articleType": "Spacesuits"}
  with open(holdout / "styles.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  own = os.path.join(workdir, "eval", "test", "metrics.json")
  before = open(own, "rb").read()
  result = scoring.evaluate(workdir,
      scoring.Options(checkpoint="latest", data_root=str(holdout), grid_images=0))
  out = os.path.join(workdir, "eval", "holdout_all")
  assert result["split"] == "all" and os.path.exists(os.path.join(out, "metrics.json"))
  article = result["metrics"]["articleType"]
  assert article["n"] == 39 and article["excluded"] == 1  # Every row but the unseen label.
  assert result["metrics"]["gender"]["n"] + result["metrics"]["gender"]["excluded"] == 40
  report = json.load(open(os.path.join(out, "data_report.json")))["products"]["problems"]
  assert any("'Spacesuits'" in str(v["first"]) for k, v in report.items() if "articleType" in k)
  assert open(own, "rb").read() == before  # The run's own report is left alone.
  # --set reaches any field of the dataset; a bad one names the flag.
  with pytest.raises(ConfigError, match="--set='csv_name=x.csv'"):
    scoring.evaluate(workdir, scoring.Options(checkpoint="latest", overrides=["csv_name=x.csv"]))


@pytest.mark.slow
@pytest.mark.parametrize("model", [["--model=resnet18"],
                                   ["--model=efficientnet_lite0", "--pretrained"]])
def test_torch_baseline_scores_the_same_rows_as_evaluate(workdir, evaluated, tmp_path, model):
  pytest.importorskip("torch")
  from scripts import torch_baseline
  columns = ["articleType", "gender", "subCategory"]
  summary = torch_baseline.main([
      f"--data={SAMPLE_DIR}", f"--split_file={os.path.join(workdir, 'split_products.csv')}",
      f"--out={tmp_path}", *model, "--image_size=32", "--max_steps=2",
      "--workers=0", f"--columns={','.join(columns)}"])
  saved = json.load(open(tmp_path / "metrics.json"))
  assert saved == json.loads(json.dumps(summary))
  for task in columns:
    ours, theirs = evaluated["metrics"][task], saved["metrics"][task]
    assert theirs["n"] == ours["n"] > 0, task  # Same rows scored, by the same rule.
    assert 0 <= theirs["accuracy"] <= 1 and 0 <= theirs["macro_f1"] <= 1



@pytest.mark.slow
def test_evaluate_with_hierarchy_decoding_rescores_the_parent_only(workdir, evaluated):
  """The fixture's run links subCategory > articleType; `--decoding=bottom_up` scores
  subCategory on its decoded probabilities in a folder of its own."""
  decoded = scoring.evaluate(workdir,
      scoring.Options(split="test", checkpoint="latest", grid_images=0, decoding="bottom_up"))
  assert os.path.exists(os.path.join(workdir, "eval", "test_bottom_up", "metrics.json"))
  assert decoded["hierarchy_decoding"] == [["articleType", "subCategory"]]
  assert evaluated["hierarchy_decoding"] == []
  for task in ("articleType", "gender"):  # Not a parent: the same scores.
    for key in ("accuracy", "macro_f1", "loss", "n"):
      assert decoded["metrics"][task][key] == pytest.approx(evaluated["metrics"][task][key],
                                                            rel=1e-5), (task, key)
  # The parent's probabilities changed (with them, almost surely, its loss).
  assert decoded["metrics"]["subCategory"]["loss"] != pytest.approx(
      evaluated["metrics"]["subCategory"]["loss"], rel=1e-6)
  assert decoded["metrics"]["subCategory"]["n"] == evaluated["metrics"]["subCategory"]["n"]

@pytest.mark.slow
def test_evaluate_with_test_time_flip_writes_its_own_report(workdir, evaluated):
  flipped = scoring.evaluate(workdir,
      scoring.Options(split="test", checkpoint="latest", grid_images=0, flip=True))
  assert os.path.exists(os.path.join(workdir, "eval", "test_flip", "metrics.json"))
  for task in ("articleType", "gender"):
    assert flipped["metrics"][task]["n"] == evaluated["metrics"][task]["n"]
  # Mirrored images change the model's outputs, hence (almost surely) some loss.
  assert flipped["metrics"]["articleType"]["loss"] != evaluated["metrics"]["articleType"]["loss"]
