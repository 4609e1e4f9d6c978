"""The regression kind (added touching only fashion_jax/tasks/regression.py and the
registry): a numeric column trains, evaluates, predicts and compares like any task."""

import json
import os

import numpy as np
import pytest

from conftest import tiny_config
from fashion_jax.evaluation import trained
from fashion_jax.training import train
from fashion_jax.tools import compare, predict
from fashion_jax.evaluation import scoring
from fashion_jax import tasks as tasks_lib
from fashion_jax.data.product_images import SAMPLE_DIR
from fashion_jax.tasks import task_config


def _year_task():
  return tasks_lib.parse_tasks({"year": task_config("regression", "year")})[0]


def test_targets_are_normalised_on_the_training_values_and_bad_ones_masked():
  task = _year_task()
  train_values = np.asarray(["2010", "2012", "", "2014.0", "n/a"], dtype=object)
  vocab = task.spec.build_vocab(task, train_values, "drop")
  assert vocab.fitted["mean"] == pytest.approx(2012.0)
  assert vocab.fitted["std"] == pytest.approx(np.std([2010, 2012, 2014]))
  targets, mask = task.spec.encode(task, vocab, np.asarray(["2012", "soon", "", "2014"]))
  np.testing.assert_array_equal(mask, [1, 0, 0, 1])
  np.testing.assert_allclose(targets, [0.0, 0.0, 0.0, 2.0 / vocab.fitted["std"]], rtol=1e-6)
  what, rows = task.spec.masked_values(task, np.asarray(["2012", "soon", ""]), mask[:3])
  assert "non-numeric" in what and rows.tolist() == [1]
  with pytest.raises(Exception, match="no numeric value"):
    task.spec.build_vocab(task, np.asarray(["", "x"], dtype=object), "drop")


def test_mae_and_rmse_are_in_the_columns_units_and_lower_is_better():
  task = tasks_lib.bind_data([_year_task()], {"year": _year_task().spec.build_vocab(
      _year_task(), np.asarray(["2010", "2014"], dtype=object), "drop")})[0]
  std = task.fit("std")  # 2.0
  output = np.asarray([[0.5], [-1.0], [3.0]], np.float32)  # Normalised predictions.
  labels = np.asarray([0.0, 0.0, 0.0], np.float32)
  mask = np.asarray([1.0, 1.0, 0.0], np.float32)
  stats = task.spec.eval_stats(task, output, labels, mask, None)
  scores = {k: float(v) for k, v in task.spec.summarize(task, stats).items()}
  assert scores["mae"] == pytest.approx((0.5 + 1.0) / 2 * std)
  assert scores["rmse"] == pytest.approx(np.sqrt((0.25 + 1.0) / 2) * std)
  assert scores["loss"] == pytest.approx((0.25 + 1.0) / 2)
  assert not task.spec.higher_is_better("mae") and task.spec.higher_is_better("accuracy")
  run = {"year": {"mae": 1.0}}
  assert compare.delta_m(run, {"year": "regression"}, [{"year": {"mae": 2.0}}]) == 50.0


@pytest.mark.slow
def test_a_year_task_trains_evaluates_and_predicts(product_tree, tmp_path):
  styles = product_tree / "styles.csv"
  lines = styles.read_text().splitlines()
  header = lines[0].split(",")
  fields = lines[7].split(",")
  fields[header.index("year")] = "unknown"
  lines[7] = ",".join(fields)
  styles.write_text("\n".join(lines) + "\n")
  config = tiny_config(root=str(product_tree), tasks={
      "articleType": task_config("softmax", "articleType"),
      "year": task_config("regression", "year", loss_type="l1")})
  config.checkpoint.best_metric = "val/year/mae"  # best_mode auto: the lowest MAE.
  workdir = str(tmp_path / "run")
  results = train.train_and_evaluate(config, workdir)
  assert np.isfinite(results["val/year/mae"]) and results["val/year/rmse"] >= results["val/year/mae"]
  report = json.load(open(os.path.join(workdir, "data_report.json")))
  listed = [key for key in json.dumps(report).split('"') if "non-numeric" in key]
  assert listed and "'unknown'" in json.dumps(report)

  summary = scoring.evaluate(workdir,
      scoring.Options(split="test", checkpoint="latest", grid_images=4))
  assert summary["metrics"]["year"]["mae"] == pytest.approx(results["test/year/mae"], rel=1e-5)
  run = trained.load(workdir, "latest")
  image = os.path.join(SAMPLE_DIR, "images", "10007.jpg")
  line = next(predict.predict_lines(run, [image]))
  value = line["predictions"]["year"]["value"]
  # An untrained head predicts near the training mean, in years.
  assert abs(value - run.task("year").fit("mean")) < 20 * run.task("year").fit("std")
  assert set(line["predictions"]) == {"articleType", "year"}


def test_auto_mode_follows_the_metrics_direction():
  import ml_collections
  from fashion_jax.training import early_stopping
  tasks = tasks_lib.parse_tasks({"year": task_config("regression", "year"),
                                 "gender": task_config("softmax", "gender")})
  assert tasks_lib.metric_mode(tasks, "val/year/mae", "auto") == "min"
  assert tasks_lib.metric_mode(tasks, "val_ema/gender/accuracy", "auto") == "max"
  assert tasks_lib.metric_mode(tasks, "val/year/mae", "max") == "max"
  cfg = ml_collections.ConfigDict({"patience": 1, "metric": "", "mode": "", "min_delta": 0.0})
  ckpt = ml_collections.ConfigDict({"best_metric": "val/year/mae", "best_mode": "auto"})
  stopper = early_stopping.EarlyStopping(cfg, ckpt, ["val/year/mae"], tasks)
  assert stopper.mode == "min"
  assert [stopper.should_stop({"val/year/mae": v}) for v in (3.0, 2.0, 2.5)] == [
      False, False, True]
