"""Training stages: parsing, a frozen backbone that really stays put, and resuming mid-run."""

import json
import shutil

import jax
import numpy as np
import pytest

from conftest import tiny_config
from fashion_jax import parallel
from fashion_jax.training import experiment, stages, train
from fashion_jax import tasks as tasks_lib
from fashion_jax.data import pipeline
from fashion_jax.errors import ConfigError


def _tasks():
  return tasks_lib.parse_tasks(tiny_config().tasks)


def test_stages_are_ordered_by_until_step_and_set_weights():
  config = {"joint": {"until_step": -1, "tasks": "articleType:2,gender", "frozen_backbone": False},
            "heads": {"until_step": 3, "tasks": "", "frozen_backbone": True}}
  heads, joint = stages.parse_stages(config, _tasks(), 10)
  assert (heads.name, heads.start, heads.end, heads.frozen_backbone) == ("heads", 1, 3, True)
  assert (joint.start, joint.end) == (4, 10)
  assert {t.name: t.weight for t in heads.tasks} == {"articleType": 1.0, "embedding": 1.0,
                                                      "gender": 0.5}
  assert {t.name: t.weight for t in joint.tasks} == {"articleType": 2.0, "embedding": 0.0,
                                                      "gender": 0.5}
  assert stages.stage_at([heads, joint], 3) is heads and stages.stage_at([heads, joint], 4) is joint
  assert [s.name for s in stages.parse_stages({}, _tasks(), 10)] == ["all"]


@pytest.mark.parametrize("bad, message", [
    ({"a": {"until_step": 3, "tasks": "", "frozen_backbone": True}}, "exactly one must be -1"),
    ({"a": {"until_step": 30, "tasks": "", "frozen_backbone": True}}, r"until_step=30: must be"),
    ({"a": {"until_step": -1, "tasks": "colour", "frozen_backbone": False}}, "unknown task 'colour'"),
    ({"a": {"until_step": -1, "tasks": "gender:0", "frozen_backbone": False}}, "every task has weight 0"),
    ({"a": {"until_step": -1, "frozen_backbone": False}}, r"config.stages.a: expected the fields"),
])
def test_bad_stages_name_the_field(bad, message):
  with pytest.raises(ConfigError, match=message):
    stages.parse_stages(bad, _tasks(), 10)


def _leaves(state, backbone: bool):
  return [np.array(x, copy=True) for path, x in jax.tree_util.tree_leaves_with_path(state)
          if train._in_backbone(path) == backbone]


@pytest.mark.slow
def test_frozen_backbone_keeps_parameters_statistics_and_moments():
  config = tiny_config()
  run = experiment.setup(config)
  tasks, data, mesh, graphdef, state = run.tasks, run.data, run.mesh, run.graphdef, run.state
  batch = parallel.shard_batch(next(pipeline.train_iterator(
      data.splits["train"], config.data, 16, 0)), mesh)
  before_backbone, before_heads = _leaves(state, True), _leaves(state, False)
  assert before_backbone and before_heads
  frozen = train.compile_train_step(graphdef, tasks, mesh, frozen_backbone=True)
  state, _ = frozen(state, batch)
  state, _ = frozen(state, batch)
  for a, b in zip(before_backbone, _leaves(state, True)):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(before_heads, _leaves(state, False)))
  joint = train.compile_train_step(graphdef, tasks, mesh)
  state, _ = joint(state, batch)
  assert any(not np.array_equal(a, b) for a, b in zip(before_backbone, _leaves(state, True)))


@pytest.mark.slow
def test_a_run_resumed_mid_way_continues_in_the_right_stage(tmp_path, capsys):
  config = tiny_config()
  config.checkpoint.keep = 5
  config.stages = {"heads": {"until_step": 2, "tasks": "", "frozen_backbone": True},
                   "joint": {"until_step": -1, "tasks": "", "frozen_backbone": False}}
  config.model.pretrained = "random"  # Frozen at its random initialisation, on purpose.
  straight = train.train_and_evaluate(config, str(tmp_path / "a"))
  # Same run, interrupted after the step-2 checkpoint (end of the heads stage).
  shutil.copytree(tmp_path / "a", tmp_path / "b")
  for step in (3, 4):
    shutil.rmtree(tmp_path / "b" / "checkpoints" / str(step), ignore_errors=True)
  capsys.readouterr()
  resumed = train.train_and_evaluate(config, str(tmp_path / "b"))
  log = capsys.readouterr().out  # The console's lines.
  assert "Resuming at step 2" in log
  assert "Stage 'joint' from step 3" in log and "Stage 'heads'" not in log
  for key, value in straight.items():
    np.testing.assert_allclose(resumed[key], value, rtol=1e-5, err_msg=key)
  assert json.loads((tmp_path / "b" / "final_metrics.json").read_text())["step"] == 4


@pytest.mark.slow
def test_early_stopping_counts_evaluations_without_improvement_and_stays_stopped(tmp_path):
  import ml_collections
  from fashion_jax.training import early_stopping
  cfg = ml_collections.ConfigDict({"patience": 2, "metric": "", "mode": "", "min_delta": 0.01})
  ckpt = ml_collections.ConfigDict({"best_metric": "val/a/accuracy", "best_mode": "max"})
  stopper = early_stopping.EarlyStopping(cfg, ckpt, ["val/a/accuracy"])
  decisions = [stopper.should_stop({"val/a/accuracy": v}) for v in (0.5, 0.6, 0.605, 0.59)]
  assert decisions == [False, False, False, True]  # 0.605 is within min_delta of 0.6.
  with pytest.raises(ConfigError, match="config.early_stopping.metric='val/b/f1'"):
    cfg.metric = "val/b/f1"
    early_stopping.EarlyStopping(cfg, ckpt, ["val/a/accuracy"])

  config = tiny_config()
  config.num_train_steps = 12
  config.eval_every_steps = 2
  config.checkpoint.every_steps = 2
  config.early_stopping.patience = 1
  config.early_stopping.min_delta = 10.0  # Nothing counts as an improvement.
  results = train.train_and_evaluate(config, str(tmp_path))
  assert json.loads((tmp_path / "final_metrics.json").read_text())["step"] == 4
  assert "test/articleType/accuracy" in results
  # Run again: it does not train on.
  train.train_and_evaluate(config, str(tmp_path))
  assert json.loads((tmp_path / "final_metrics.json").read_text())["step"] == 4


@pytest.mark.slow
def test_ema_trains_alongside_is_scored_and_checkpointed(tmp_path):
  from fashion_jax.evaluation import trained
  from fashion_jax.evaluation import scoring
  config = tiny_config()
  config.ema_decay = 0.5
  config.checkpoint.best_metric = "val_ema/articleType/accuracy"
  results = train.train_and_evaluate(config, str(tmp_path))
  assert {"val_ema/articleType/accuracy", "test_ema/embedding/recall_at_1",
          "val/articleType/accuracy"} <= set(results)
  run = trained.load(str(tmp_path), "latest")
  def kernel(part):
    return np.asarray(run.state[part]["heads"]["articleType"]["kernel"][...])
  assert not np.allclose(kernel("model"), kernel("ema"))  # The average lags.
  summary = scoring.evaluate(str(tmp_path),
      scoring.Options(split="test", checkpoint="latest", grid_images=2, ema=True))
  np.testing.assert_allclose(summary["metrics"]["articleType"]["accuracy"],
                             results["test_ema/articleType/accuracy"], rtol=1e-6)
