"""The train step, its data-parallel form, checkpoint round trips and the main entry point."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from conftest import REPO, compiled_setup as _setup, run_main, snapshot, tiny_config
from fashion_jax import parallel
from fashion_jax.evaluation import evaluators
from fashion_jax.training import train
from fashion_jax.data import pipeline
from fashion_jax.errors import ConfigError


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_losses_fall_on_a_fixed_batch(dtype):
  config = tiny_config()
  config.model.dtype = dtype  # bfloat16 activations; parameters and losses stay float32.
  config.optimizer.schedule = "constant"
  config.optimizer.learning_rate = 3e-3
  tasks, data, state, train_fn, _, mesh = _setup(config)
  batch = parallel.shard_batch(next(pipeline.train_iterator(
      data.splits["train"], config.data, 16, 0)), mesh)
  history = []
  for _ in range(15):
    state, metrics = train_fn(state, batch)
    history.append(jax.device_get(metrics))
  for task in ("articleType", "gender", "embedding", "total"):
    first, last = history[0][f"loss/{task}"], history[-1][f"loss/{task}"]
    assert last < 0.7 * first, (task, first, last)
  # One compilation for all steps: shapes, dtypes and shardings never change.
  assert train_fn._cache_size() == 1
  assert all(x.dtype == np.float32 for x in jax.tree.leaves(state)
             if np.issubdtype(x.dtype, np.floating))  # Parameters and moments.
  assert all(np.isfinite(m["loss/total"]) for m in history)
  total = history[0]["loss/total"]
  weighted = sum(t.weight * history[0][f"loss/{t.name}"] for t in tasks)
  np.testing.assert_allclose(total, weighted, rtol=1e-5)


@pytest.mark.slow
def test_multi_label_task_trains_and_is_scored(product_tree):
  from fashion_jax.tasks import task_config
  config = tiny_config(root=str(product_tree), tasks={
      "tags": task_config("sigmoid", "tags", pos_weight=2.0),
      "colour": task_config("softmax", "baseColour"),
  })
  config.optimizer.schedule = "constant"
  config.optimizer.learning_rate = 3e-3
  tasks, data, state, train_fn, eval_fn, mesh = _setup(config)
  batch = parallel.shard_batch(next(pipeline.train_iterator(
      data.splits["train"], config.data, 16, 0)), mesh)
  first = None
  for _ in range(20):
    state, metrics = train_fn(state, batch)
    first = first or float(metrics["loss/tags"])
  assert float(metrics["loss/tags"]) < 0.7 * first
  results = evaluators.accumulate(eval_fn, tasks, state, pipeline.eval_batches(
      data.splits["val"], config.data, 16), mesh, "val",
      evaluators.EvalPass(tasks)).metrics("val")
  assert 0 <= results["val/tags/micro_f1"] <= 1 and "val/tags/macro_f1" in results


_SHARDED_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    import jax, numpy as np
    from conftest import tiny_config
    from conftest import compiled_setup as _setup
    from fashion_jax import parallel
    from fashion_jax.data import pipeline
    from fashion_jax.tasks import task_config
    assert jax.device_count() == 4, jax.devices()
    softmax_only = tiny_config(tasks={{"a": task_config("softmax", "articleType"),
                                      "g": task_config("softmax", "gender")}})
    # SGD: the update is linear in the gradient. (Adam's first steps divide by the
    # gradient's own magnitude, so round-off in near-zero gradients becomes lr-sized.)
    softmax_only.optimizer.name = "sgd"
    out = {{}}
    for name, config, steps in (("softmax", softmax_only, 2), ("all", tiny_config(), 1)):
      for n in (1, 4):
        tasks, data, state, train_fn, _, mesh = _setup(config, parallel.make_mesh(jax.devices()[:n]))
        batch = next(pipeline.train_iterator(data.splits["train"], config.data, 16, 0))
        batch = parallel.shard_batch(batch, mesh)
        assert len(batch["image"].sharding.device_set) == n
        for _ in range(steps):
          state, metrics = train_fn(state, batch)
        out[name, n] = ([np.asarray(x) for x in jax.tree.leaves(state)],
                        {{k: float(v) for k, v in metrics.items()}})
    # Elementwise |a - b| beyond a 1e-3 relative tolerance; an absolute floor is
    # needed because some gradients are exactly zero in exact arithmetic (a bias right
    # before a BatchNorm) and only round-off remains in them.
    excess = [float(np.max(np.abs(a - b) - 1e-3 * np.abs(a)))
              for a, b in zip(out["softmax", 1][0], out["softmax", 4][0])]
    print(json.dumps({{"max_excess_over_rtol": max(excess),
                      "metrics": {{f"{{k[0]}}/{{k[1]}}": v[1] for k, v in out.items()}}}}))
""")


@pytest.mark.slow
def test_sharded_step_on_4_devices_matches_1_device():
  # Compiled as users compile: which hardest triplets the batch-hard loss picks turns on
  # round-off, and the unoptimised code's round-off moves its gradient norm ~2% here.
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
         "JAX_PLATFORMS": "cpu"}
  script = _SHARDED_SCRIPT.format(tests=os.path.join(REPO, "tests"))
  result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=600, cwd=REPO)
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.loads(result.stdout.strip().splitlines()[-1])
  # Same global batch, BatchNorm over the global batch: equal up to summation order.
  # (Per-device BatchNorm statistics would differ by O(1) here.)
  assert out["max_excess_over_rtol"] < 1e-5, out
  metrics = out["metrics"]
  for name in ("softmax", "all"):
    for key, value in metrics[f"{name}/1"].items():
      # The batch-hard triplet picks its hardest pairs by comparing distances, so
      # round-off moves it more than a softmax loss, and its gradient more still.
      rtol = 1e-4
      if name == "all" and key in ("loss/embedding", "loss/total"):
        rtol = 1e-3
      if name == "all" and key == "grad_norm":
        rtol = 1e-2
      np.testing.assert_allclose(metrics[f"{name}/4"][key], value, rtol=rtol, err_msg=key)


@pytest.mark.slow
def test_main_trains_writes_outputs_and_resumes(tmp_path):
  workdir = tmp_path / "run"
  result = run_main(workdir, "--config.num_train_steps=4")
  assert result.returncode == 0, result.stderr[-3000:]
  assert "val   articleType" in result.stdout
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]
  for name in ("vocab.json", "config.json", "data_report.json", "final_metrics.json"):
    assert (workdir / name).exists(), name
  assert any(n.startswith("events.out.tfevents") for n in os.listdir(workdir))
  final = json.loads((workdir / "final_metrics.json").read_text())
  assert final["step"] == 4 and "test/articleType/accuracy" in final
  # The CLI override reached the config the run saved.
  assert json.loads((workdir / "config.json").read_text())["model"]["name"] == "resnet_tiny"

  again = run_main(workdir, "--config.num_train_steps=6")
  assert again.returncode == 0, again.stderr[-3000:]
  assert "Resuming at step 4 of 6" in again.stdout
  assert json.loads((workdir / "final_metrics.json").read_text())["step"] == 6


def test_config_typo_and_bad_values_fail_with_the_field_name(tmp_path):
  typo = run_main(tmp_path / "a", "--config.data.imagesize=64")
  assert typo.returncode != 0 and "imagesize" in typo.stderr
  wrong_type = run_main(tmp_path / "b", "--config.batch_size=abc")
  assert wrong_type.returncode != 0 and "batch_size" in wrong_type.stderr
  bad_metric = run_main(tmp_path / "c", "--config.checkpoint.best_metric=val/nope/accuracy")
  assert bad_metric.returncode == 2
  assert "config.checkpoint.best_metric='val/nope/accuracy'" in bad_metric.stderr
  assert "Traceback" not in bad_metric.stderr


@pytest.mark.slow
@pytest.mark.parametrize("image_size", [32, 40, 48, 64])
def test_mtl_tasks_train_with_finite_gradients_down_to_the_total_stride(image_size):
  # At 32 px the last stage is 1x1: when the batch shares its corner pixel (white
  # backgrounds) every feature can be cut to 0 and the embedding head outputs exactly 0,
  # whose L2 normalisation had a NaN gradient.
  from conftest import load_config
  config = load_config("mtl")
  config.datasets.products.root = ""
  config.model.name = "resnet_tiny"  # At its default width, as a user would run it.
  config.data.image_size = image_size
  config.batch_size = 8
  tasks, data, state, train_fn, _, mesh = _setup(config)
  assert any(t.kind == "embedding" for t in tasks)
  batches = pipeline.train_iterator(data.splits["train"], config.data, 8, config.seed)
  for step in range(3):
    state, metrics = train_fn(state, parallel.shard_batch(next(batches), mesh))
    assert np.isfinite(metrics["grad_norm"]), (image_size, step)
    assert np.isfinite(metrics["loss/total"]), (image_size, step)


@pytest.mark.slow
def test_a_rerun_that_fails_to_start_leaves_the_workdir_byte_identical(tmp_path):
  workdir = tmp_path / "run"
  config = tiny_config()
  config.num_train_steps = 2
  train.train_and_evaluate(config, str(workdir))
  before = snapshot(workdir)
  assert "config.json" in before and "vocab.json" in before
  # A dataset field that is only read once the data is: the workdir was overwritten
  # before it was checked.
  result = run_main(workdir, "--config.num_train_steps=2",
                    "--config.datasets.products.sampler=bogus")
  assert result.returncode == 2, result.stderr[-3000:]
  assert "config.datasets.products.sampler='bogus' is not one of" in result.stderr
  assert "Traceback" not in result.stderr
  assert snapshot(workdir) == before
  # A check that needs the data (the run's length): same.
  config.stages = {"heads": {"until_step": 50, "tasks": "", "frozen_backbone": True}}
  config.model.pretrained = "random"
  with pytest.raises(ConfigError, match="until_step=50"):
    train.train_and_evaluate(config, str(workdir))
  assert snapshot(workdir) == before
