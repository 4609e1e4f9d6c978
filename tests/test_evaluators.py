"""The evaluation loop (evaluation/evaluators.py): every metric of every task, in one pass."""

import numpy as np

from conftest import compiled_setup, tiny_config
from fashion_jax import tasks as tasks_lib
from fashion_jax.data import pipeline
from fashion_jax.evaluation import evaluators

_setup = compiled_setup


def test_eval_reports_every_metric_of_every_task():
  config = tiny_config()
  tasks, data, state, _, eval_fn, mesh = _setup(config)
  batches = pipeline.eval_batches(data.splits["val"], config.data, 16)
  results = evaluators.accumulate(eval_fn, tasks, state, batches, mesh, "val",
                                  evaluators.EvalPass(tasks)).metrics("val")
  assert sorted(results) == sorted(tasks_lib.metric_keys(tasks, "val"))
  assert all(np.isfinite(v) for v in results.values())
  assert 0 <= results["val/articleType/accuracy"] <= 1
